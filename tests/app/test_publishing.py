"""Publishing hubspot-app.json to HubSpot's definitions API (against FakeHubSpot), and the project export."""

import copy
import json

import pytest
from cryptography.fernet import Fernet

from app.hubspot import publishing
from app.hubspot.app_definition import load_app_definition
from app.hubspot.publishing import PublishError, export_project, publish_actions

PUBLIC_URL = "https://qbo-actions.test"
APP_ID = 4242
WRITES = ("POST", "PATCH", "PUT", "DELETE")


@pytest.fixture(scope="module")
def definition():
    return load_app_definition()


def publish(fake, definition, **overrides):
    settings = dict(
        app_definition=definition,
        public_url=PUBLIC_URL,
        api_base_url=fake.url,
        app_id=APP_ID,
        developer_api_key=fake.developer_api_key,
    )
    return publish_actions(**settings | overrides)


def writes(fake):
    return [r for r in fake.requests if r.method in WRITES and "/automation/" in r.path]


def stored(fake):
    return {d["actionUrl"]: d for d in fake.definitions[APP_ID].values()}


def relabelled(definition, action="create_estimate", name="Create a QuickBooks quote"):
    changed = copy.deepcopy(definition)
    changed.actions[action]["labels"]["en"]["actionName"] = name
    return changed


def test_first_publish_creates_six_definitions_the_fake_accepts(fake_hubspot, definition):
    rows = publish(fake_hubspot, definition)

    assert [(row.action, row.outcome) for row in rows] == [(name, "created") for name in definition.action_names]
    definitions = stored(fake_hubspot)
    assert set(definitions) == {f"{PUBLIC_URL}/hubspot/actions/{name}" for name in definition.action_names}
    for row in rows:
        saved = fake_hubspot.definitions[APP_ID][row.definition_id]
        assert saved["actionUrl"] == f"{PUBLIC_URL}/hubspot/actions/{row.action}"
        assert saved["published"] is True
    posts = fake_hubspot.requests_to("POST", f"/automation/actions/2026-03/{APP_ID}")
    assert len(posts) == 6 and all(r.status == 201 for r in posts)
    assert all(r.query["hapikey"] == "hs-dev-key" and "Authorization" not in r.headers for r in fake_hubspot.requests)


def test_second_run_changes_nothing(fake_hubspot, definition):
    first = publish(fake_hubspot, definition)
    sent = len(writes(fake_hubspot))

    second = publish(fake_hubspot, definition)

    assert [row.outcome for row in second] == ["unchanged"] * 6
    assert [row.definition_id for row in second] == [row.definition_id for row in first]
    assert len(writes(fake_hubspot)) == sent == 6
    assert {d["revisionId"] for d in fake_hubspot.definitions[APP_ID].values()} == {"1"}


def test_a_changed_label_is_patched(fake_hubspot, definition):
    first = {row.action: row.definition_id for row in publish(fake_hubspot, definition)}

    rows = publish(fake_hubspot, relabelled(definition))

    outcomes = {row.action: (row.outcome, row.changes) for row in rows}
    assert outcomes.pop("create_estimate") == ("updated", ("labels",))
    assert {outcome for outcome, _ in outcomes.values()} == {"unchanged"}
    [patch] = fake_hubspot.requests_to("PATCH", "/automation/")
    assert patch.path == f"/automation/actions/2026-03/{APP_ID}/{first['create_estimate']}"
    assert "functions" not in patch.json
    saved = fake_hubspot.definitions[APP_ID][first["create_estimate"]]
    assert saved["labels"]["en"]["actionName"] == "Create a QuickBooks quote" and saved["revisionId"] == "2"
    assert [row.outcome for row in publish(fake_hubspot, relabelled(definition))] == ["unchanged"] * 6


def test_dry_run_sends_no_writes(fake_hubspot, definition):
    rows = publish(fake_hubspot, definition, dry_run=True)
    assert [(row.outcome, row.definition_id) for row in rows] == [("would create", "")] * 6
    assert writes(fake_hubspot) == [] and fake_hubspot.definitions[APP_ID] == {}

    publish(fake_hubspot, definition)
    rows = publish(fake_hubspot, relabelled(definition), dry_run=True)
    assert [row.outcome for row in rows] == [
        "unchanged",
        "would update",
        "unchanged",
        "unchanged",
        "unchanged",
        "unchanged",
    ]
    assert fake_hubspot.requests_to("PATCH", "/automation/") == []


def test_hubspot_refusing_raises_with_its_message(fake_hubspot, definition):
    publish(fake_hubspot, definition, dry_run=True)
    fake_hubspot.fail_next(
        f"POST /automation/actions/2026-03/{APP_ID}",
        400,
        {
            "status": "error",
            "message": "Invalid actionUrl: must be https",
            "category": "VALIDATION_ERROR",
            "correlationId": "c0ffee",
        },
    )

    with pytest.raises(PublishError) as caught:
        publish(fake_hubspot, definition)

    assert caught.value.hubspot_message == "Invalid actionUrl: must be https"
    assert caught.value.status == 400 and caught.value.action == "create_invoice"
    assert "Invalid actionUrl: must be https" in str(caught.value)
    assert fake_hubspot.definitions[APP_ID] == {}


def test_hubspot_validation_details_are_kept(fake_hubspot, definition):
    broken = copy.deepcopy(definition)
    broken.actions["create_expense"]["objectTypes"] = []
    with pytest.raises(PublishError) as caught:
        publish(fake_hubspot, broken)
    assert caught.value.action == "create_expense" and "objectTypes" in caught.value.hubspot_message
    assert [row.outcome for row in caught.value.rows] == ["created"] * 4  # done before HubSpot refused


def test_wrong_developer_key_is_reported(fake_hubspot, definition):
    with pytest.raises(PublishError) as caught:
        publish(fake_hubspot, definition, developer_api_key="not-the-key")
    assert caught.value.status == 401 and "API key provided is invalid" in caught.value.hubspot_message
    assert "not-the-key" not in str(caught.value)


def test_falls_back_to_v4_when_the_versioned_path_is_unknown(fake_hubspot, definition):
    fake_hubspot.fail_next(
        f"GET /automation/actions/2026-03/{APP_ID}",
        404,
        {"status": "error", "message": "Not found", "category": "OBJECT_NOT_FOUND"},
    )

    rows = publish(fake_hubspot, definition)

    assert [row.outcome for row in rows] == ["created"] * 6
    assert len(fake_hubspot.requests_to("POST", f"/automation/v4/actions/{APP_ID}")) == 6
    assert fake_hubspot.requests_to("POST", "/automation/actions/2026-03") == []


def test_v4_can_be_chosen_outright(fake_hubspot, definition):
    publish(fake_hubspot, definition, api_version="v4")
    assert {r.path for r in fake_hubspot.requests} == {f"/automation/v4/actions/{APP_ID}"}
    rows = publish(fake_hubspot, definition)  # the same definitions seen through the 2026-03 path
    assert [row.outcome for row in rows] == ["unchanged"] * 6


def test_developer_token_is_sent_as_bearer(fake_hubspot, definition):
    fake_hubspot.developer_tokens.add("dev-token")
    rows = publish(fake_hubspot, definition, developer_api_key=None, developer_token="dev-token")
    assert [row.outcome for row in rows] == ["created"] * 6
    assert all(
        r.headers["Authorization"] == "Bearer dev-token" and "hapikey" not in r.query for r in fake_hubspot.requests
    )


def test_existing_definitions_are_found_across_pages(fake_hubspot, definition):
    other = copy.deepcopy(definition)
    for index in range(55):  # someone else's actions on the same app, before ours in the listing
        name = f"other_{index}"
        other.actions[name] = copy.deepcopy(definition.actions["create_expense"]) | {
            "name": name,
            "actionUrl": f"/elsewhere/{index}",
        }
    for name in definition.action_names:
        del other.actions[name]
    publish(fake_hubspot, other)
    publish(fake_hubspot, definition)

    rows = publish(fake_hubspot, definition)

    assert [row.outcome for row in rows] == ["unchanged"] * 6
    lists = fake_hubspot.requests_to("GET", f"/automation/actions/2026-03/{APP_ID}")
    assert any("after" in r.query for r in lists)


def test_unreachable_hubspot_is_a_publish_error(definition):
    with pytest.raises(PublishError, match="Could not reach HubSpot"):
        publish_actions(
            app_definition=definition,
            public_url=PUBLIC_URL,
            api_base_url="http://127.0.0.1:9",
            app_id=APP_ID,
            developer_api_key="secret-key",
        )


# --- flask hubspot ... ---------------------------------------------------------------------------------------


@pytest.fixture
def cli_app(fake_hubspot, tmp_path, monkeypatch):
    """The real app, its `flask hubspot` commands pointed at the HubSpot fake."""
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path / "instance"))
    config = {
        "PUBLIC_URL": PUBLIC_URL,
        "HUBSPOT_APP_ID": str(APP_ID),
        "HUBSPOT_API_BASE_URL": fake_hubspot.url,
        "HUBSPOT_API_VERSION": "2026-03",
        "HUBSPOT_DEVELOPER_API_KEY": fake_hubspot.developer_api_key,
        "HUBSPOT_DEVELOPER_TOKEN": "",
    }
    from app import create_app

    return create_app(
        {
            "TESTING": True,
            "APP_ENV": "test",
            "DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
            "QUEUE_SQLITE_PATH": str(tmp_path / "queue.db"),
            "QUEUE_IMMEDIATE": True,
            "SECRET_KEY": "test",
            "TOKEN_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            **config,
        }
    )


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=["hubspot", *args])


def test_cli_publishes_and_prints_a_table(cli_app, fake_hubspot):
    result = invoke(cli_app, "publish-actions")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ACTION", "DEFINITION", "ID", "RESULT"]
    ids = {d["actionUrl"].rsplit("/", 1)[1]: i for i, d in fake_hubspot.definitions[APP_ID].items()}
    for name, definition_id in ids.items():
        assert any(line.split() == [name, definition_id, "created"] for line in lines), result.output

    again = invoke(cli_app, "publish-actions")
    assert again.exit_code == 0 and again.output.count("unchanged") == 6


def test_cli_dry_run(cli_app, fake_hubspot):
    result = invoke(cli_app, "publish-actions", "--dry-run")
    assert result.exit_code == 0, result.output
    assert result.output.count("would create") == 6 and "nothing was sent" in result.output
    assert writes(fake_hubspot) == []


def test_cli_fails_with_hubspots_message(cli_app, fake_hubspot):
    fake_hubspot.fail_next(
        "POST /automation/actions/2026-03",
        400,
        {"status": "error", "message": "App 4242 has too many actions", "category": "VALIDATION_ERROR"},
    )
    result = invoke(cli_app, "publish-actions")
    assert result.exit_code != 0
    assert "App 4242 has too many actions" in result.output


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"HUBSPOT_APP_ID": ""}, "HUBSPOT_APP_ID"),
        (
            {"HUBSPOT_DEVELOPER_API_KEY": "", "HUBSPOT_DEVELOPER_TOKEN": ""},
            "HUBSPOT_DEVELOPER_API_KEY or HUBSPOT_DEVELOPER_TOKEN",
        ),
    ],
)
def test_cli_names_missing_settings(cli_app, fake_hubspot, settings, expected):
    cli_app.config.update(settings)
    result = invoke(cli_app, "publish-actions")
    assert result.exit_code != 0 and expected in result.output
    assert fake_hubspot.requests == []


def test_cli_exports_a_project(cli_app, tmp_path):
    result = invoke(cli_app, "export-project", str(tmp_path / "project"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "project" / "src" / "app" / "workflow-actions" / "create_invoice-hsmeta.json").is_file()
    assert (tmp_path / "project" / "src" / "app" / "cards" / "quickbooks-documents.jsx").is_file()
    assert "Wrote 11 files" in result.output


# --- export-project -------------------------------------------------------------------------------------------

CARD_FILES = ("quickbooks-documents-hsmeta.json", "quickbooks-documents.jsx", "package.json")
# Required keys per HubSpot's project components (reference sheet §8).
WORKFLOW_ACTION_REQUIRED = ("actionUrl", "supportedClients", "labels")
APP_AUTH_KEYS = ("type", "redirectUrls", "requiredScopes", "optionalScopes", "conditionallyRequiredScopes")


def test_export_writes_a_project(definition, tmp_path):
    paths = export_project(app_definition=definition, public_url=PUBLIC_URL, directory=tmp_path)

    relative = sorted(str(p.relative_to(tmp_path)) for p in paths)
    assert relative == sorted(
        ["hsproject.json", "src/app/app-hsmeta.json"]
        + [f"src/app/cards/{name}" for name in CARD_FILES]
        + [f"src/app/workflow-actions/{name}-hsmeta.json" for name in definition.action_names]
    )
    documents = {path: json.loads(path.read_text()) for path in paths if path.suffix == ".json"}  # valid JSON

    assert documents[tmp_path / "hsproject.json"] == {
        "name": "qbo-actions",
        "srcDir": "src",
        "platformVersion": "2026.03",
    }

    app = documents[tmp_path / "src" / "app" / "app-hsmeta.json"]
    assert app["type"] == "app" and app["uid"]
    assert app["config"]["name"] == "QuickBooks Actions (qbo-actions)"
    assert app["config"]["distribution"] in ("private", "marketplace")
    assert set(APP_AUTH_KEYS) <= set(app["config"]["auth"]) and app["config"]["auth"]["type"] == "oauth"
    assert app["config"]["auth"]["redirectUrls"] == [f"{PUBLIC_URL}/oauth/hubspot/callback"]
    assert app["config"]["auth"]["requiredScopes"][:2] == ["oauth", "automation"]
    assert app["config"]["permittedUrls"]["fetch"] == [PUBLIC_URL]  # the card's hubspot.fetch calls the server
    assert app["config"]["support"]["supportUrl"]

    for name in definition.action_names:
        action = documents[tmp_path / "src" / "app" / "workflow-actions" / f"{name}-hsmeta.json"]
        assert action["uid"] == name and action["type"] == "workflow-action"
        config = action["config"]
        assert all(key in config for key in WORKFLOW_ACTION_REQUIRED)
        assert config["actionUrl"] == f"{PUBLIC_URL}/hubspot/actions/{name}"
        assert config["isPublished"] is True and config["supportedClients"] == [{"client": "WORKFLOWS"}]
        assert config["labels"]["en"]["actionName"]
        assert config["objectTypes"] and config["inputFields"] and config["outputFields"]
        assert len(config["executionRules"]) == 26
        for item in config["inputFields"]:
            url = item["typeDefinition"].get("optionsUrl")
            assert url in (None, f"{PUBLIC_URL}/hubspot/actions/{name}/options")


def test_export_is_stable(definition, tmp_path):
    first = export_project(app_definition=definition, public_url=PUBLIC_URL, directory=tmp_path / "a")
    second = export_project(app_definition=definition, public_url=PUBLIC_URL, directory=tmp_path / "b")
    for one, two in zip(first, second, strict=True):
        assert one.read_text() == two.read_text()
        if one.suffix == ".json":
            assert one.read_text().startswith("{\n  ") and one.read_text().endswith("}\n")
    hsmeta = json.loads(first[-1].read_text())
    assert list(hsmeta) == ["uid", "type", "config"]
    assert list(hsmeta["config"])[:3] == ["actionUrl", "isPublished", "supportedClients"]


# --- the app card ------------------------------------------------------------------------------------------


def test_export_writes_the_card(definition, tmp_path):
    export_project(app_definition=definition, public_url=PUBLIC_URL + "/", directory=tmp_path)
    cards = tmp_path / "src" / "app" / "cards"

    hsmeta = json.loads((cards / "quickbooks-documents-hsmeta.json").read_text())
    assert hsmeta == {
        "uid": "quickbooks_documents",
        "type": "card",
        "config": {
            "name": "QuickBooks documents",
            "description": definition.app["card"]["description"],
            "location": "crm.record.tab",
            "entrypoint": "/app/cards/quickbooks-documents.jsx",
            "objectTypes": ["deals", "quotes", "commerce_payments"],
        },
    }

    source = (cards / "quickbooks-documents.jsx").read_text()
    assert f'export const PUBLIC_URL = "{PUBLIC_URL}";' in source  # no trailing slash: paths are appended
    assert "__QBO_ACTIONS_PUBLIC_URL__" not in source
    assert "hubspot.extend(" in source and "from '@hubspot/ui-extensions'" in source
    assert "'/hubspot/cards/documents'" in source

    package = json.loads((cards / "package.json").read_text())
    ours = json.loads((publishing.CARD_SOURCE / "package.json").read_text())
    assert package["dependencies"] == ours["dependencies"]  # the versions the card's tests ran with
    assert {"@hubspot/ui-extensions", "react"} <= set(package["dependencies"])
    assert "devDependencies" not in package and "scripts" not in package


def test_the_card_is_the_repositorys_source_with_the_url_filled_in(definition, tmp_path):
    export_project(app_definition=definition, public_url=PUBLIC_URL, directory=tmp_path)
    exported = (tmp_path / "src" / "app" / "cards" / "quickbooks-documents.jsx").read_text()
    source = (publishing.CARD_SOURCE / "quickbooks-documents.jsx").read_text()
    assert exported == source.replace("'__QBO_ACTIONS_PUBLIC_URL__'", json.dumps(PUBLIC_URL))


def test_an_app_without_a_card_exports_none(definition, tmp_path):
    without = copy.deepcopy(definition)
    without.app["card"] = None
    paths = export_project(app_definition=without, public_url=PUBLIC_URL, directory=tmp_path)
    assert not any("cards" in path.parts for path in paths)
    app = json.loads((tmp_path / "src" / "app" / "app-hsmeta.json").read_text())
    assert app["config"]["permittedUrls"]["fetch"] == []


def test_permitted_fetch_urls_keep_the_apps_own(definition, tmp_path):
    listed = copy.deepcopy(definition)
    listed.app["permittedFetchUrls"] = ["https://api.example.test", PUBLIC_URL]
    export_project(app_definition=listed, public_url=PUBLIC_URL, directory=tmp_path)
    app = json.loads((tmp_path / "src" / "app" / "app-hsmeta.json").read_text())
    assert app["config"]["permittedUrls"]["fetch"] == ["https://api.example.test", PUBLIC_URL]


def test_a_card_without_its_placeholder_is_refused(definition, tmp_path, monkeypatch):
    source = tmp_path / "card"
    source.mkdir()
    (source / "quickbooks-documents.jsx").write_text("export const PUBLIC_URL = 'https://elsewhere.test';\n")
    monkeypatch.setattr(publishing, "CARD_SOURCE", source)
    with pytest.raises(ValueError, match="placeholder"):
        export_project(app_definition=definition, public_url=PUBLIC_URL, directory=tmp_path / "out")
