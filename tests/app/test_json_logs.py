"""LOG_FORMAT=json: one JSON object a line, carrying the execution being worked on, masked like every log record;
LOG_FORMAT=text: the same line as before, with ` [execution 42]` inside an execution."""

import io
import json
import logging

import pytest

from app import create_app
from app.config import ConfigError
from app.observability import (
    ExecutionContextFilter,
    JsonFormatter,
    TextFormatter,
    current_log_context,
    execution_log_context,
)

EMAIL = "ann.lee@acme.test"
TOKEN = "hs-access-0123456789"


@pytest.fixture
def console(request):
    """A console handler on the root logger, as logging.basicConfig makes in `flask worker` or gunicorn."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


@pytest.fixture
def app_config(app_config, console):
    return {**app_config, "LOG_FORMAT": "json"}


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_execution_inside_its_context_only(app, console, caplog):
    caplog.set_level(logging.INFO)
    log = logging.getLogger("app.worker")
    log.info("before")
    with execution_log_context(42, portal_id=62515, action="create_invoice"):
        log.info("invoice %s created", "1037")
        log.warning("retrying")
    log.info("after")

    before, created, retrying, after = lines(console)
    assert set(before) == {"time", "level", "logger", "message", "process"}
    assert (before["level"], before["logger"], before["message"]) == ("INFO", "app.worker", "before")
    assert before["time"].endswith("Z") and "T" in before["time"]
    assert created["message"] == "invoice 1037 created"
    for line in (created, retrying):
        assert (line["execution_id"], line["portal_id"], line["action"]) == (42, 62515, "create_invoice")
    assert retrying["level"] == "WARNING"
    assert "execution_id" not in after and "execution_id" not in before


def test_json_lines_are_masked(app, console, caplog):
    caplog.set_level(logging.INFO)
    log = logging.getLogger("app.anything")
    with execution_log_context(7):
        log.warning("contact %s called with Authorization: Bearer %s", EMAIL, TOKEN)
        try:
            raise ValueError(f"no customer for {EMAIL} (access_token={TOKEN})")
        except ValueError:
            log.exception("failed")
    text = console.getvalue()
    assert EMAIL not in text and TOKEN not in text
    warning, failure = lines(console)
    assert warning["message"] == "contact [email] called with Authorization: Bearer [Filtered]"
    assert warning["execution_id"] == 7 and "portal_id" not in warning and "action" not in warning
    assert "ValueError: no customer for [email] (access_token=[Filtered])" in failure["exception"]
    assert failure["exception"].startswith("Traceback")


def test_the_context_fields_can_be_completed_and_nest():
    assert current_log_context() == {}
    with execution_log_context(1) as fields:
        fields["action"] = "create_expense"
        assert current_log_context() == {"execution_id": 1, "action": "create_expense"}
        with execution_log_context(2, portal_id=5):
            assert current_log_context() == {"execution_id": 2, "portal_id": 5}
        assert current_log_context()["execution_id"] == 1
    assert current_log_context() == {}


def test_a_record_naming_its_execution_keeps_it():
    record = logging.LogRecord("app.worker", logging.INFO, __file__, 1, "sweep", (), None)
    record.execution_id = 99
    with execution_log_context(1):
        ExecutionContextFilter().filter(record)
    assert json.loads(JsonFormatter().format(record))["execution_id"] == 99


def test_text_lines_name_the_execution():
    formatter = TextFormatter()
    inside = logging.LogRecord("app.worker", logging.INFO, __file__, 1, "token %s", ("Bearer abc.def",), None)
    with execution_log_context(42, portal_id=62515, action="create_invoice"):
        ExecutionContextFilter().filter(inside)
    outside = logging.LogRecord("app.worker", logging.INFO, __file__, 1, "idle", (), None)
    ExecutionContextFilter().filter(outside)
    assert formatter.format(inside).endswith(" INFO app.worker: token Bearer [Filtered] [execution 42]")
    assert formatter.format(outside).endswith(" INFO app.worker: idle")


def test_text_is_the_default(app_config, console, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "text-instance"))
    create_app({**app_config, "LOG_FORMAT": "text"})
    logging.getLogger("app.worker").warning("plain")
    assert console.getvalue().endswith("WARNING app.worker: plain\n")


def test_an_unknown_log_format_is_refused(app_config, tmp_path, monkeypatch):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "bad-instance"))
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of text, json, not 'xml'"):
        create_app({**app_config, "LOG_FORMAT": "xml"})


def test_gunicorn_access_lines_keep_their_fields_and_are_masked(app, console):
    """gunicorn logs each request as `access_log_format % atoms`; the atoms survive masking one by one."""
    from gunicorn.glogging import SafeAtoms

    atoms = SafeAtoms(
        {
            "h": "10.0.0.7",
            "r": "GET /oauth/hubspot/callback?code=abc123&state=s3cr3t HTTP/1.1",
            "m": "GET",
            "U": "/oauth/hubspot/callback",
            "q": "code=abc123&state=s3cr3t",
            "s": "302",
            "B": "189",
            "D": "15250",
        }
    )
    access = logging.getLogger("gunicorn.access")
    handler = logging.StreamHandler(console)
    handler.setFormatter(JsonFormatter())
    access.addHandler(handler)
    access.propagate, access.level = False, logging.INFO
    try:
        access.info('%(h)s "%(r)s" %(s)s %(B)s %({x-missing}i)s', atoms)
    finally:
        access.removeHandler(handler)
        access.propagate, access.level = True, logging.NOTSET
    (line,) = lines(console)
    assert "abc123" not in console.getvalue() and "s3cr3t" not in console.getvalue()
    request_line = "GET /oauth/hubspot/callback?code=[Filtered]&state=[Filtered] HTTP/1.1"
    assert line["message"] == f'10.0.0.7 "{request_line}" 302 189 -'
    assert (line["method"], line["path"], line["status"], line["bytes"]) == ("GET", "/oauth/hubspot/callback", 302, 189)
    assert isinstance(line["status"], int) and isinstance(line["bytes"], int)
    assert line["duration_ms"] == 15.25
    assert line["logger"] == "gunicorn.access"
