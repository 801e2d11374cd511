"""JSON errors: every refusal says why, in a body a machine and a person can read."""

from flask import current_app, jsonify, render_template, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.hubspot.signature import InvalidSignature
from app.schemas import error_reasons


def init_app(app):
    @app.before_request
    def refuse_unbounded_bodies():
        """A chunked body has no Content-Length to refuse up front, and werkzeug quietly stops reading it at
        MAX_CONTENT_LENGTH: read it here, and a body that reaches the limit is refused like a declared one."""
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        if limit and request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", ""):
            if len(request.get_data(cache=True)) >= limit:
                raise RequestEntityTooLarge()

    @app.errorhandler(InvalidSignature)
    def invalid_signature(error):
        return jsonify({"error": "invalid_signature", "reason": error.reason}), 401

    @app.errorhandler(ValidationError)
    def invalid_request(error):
        return jsonify({"error": "invalid_request", "reasons": error_reasons(error.messages)}), 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error):
        # Raised when the body is first read (before any signature check or parsing), so nothing is recorded.
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        reason = f"The request body is larger than the {limit} bytes this server accepts (MAX_CONTENT_LENGTH)."
        return http_error(RequestEntityTooLarge(description=reason))

    @app.errorhandler(HTTPException)
    def http_error(error):
        if wants_page():
            return render_template("console/error.html", error=error), error.code
        response = jsonify({"error": error.name.lower().replace(" ", "_"), "reason": error.description})
        # The exception's own headers, such as a 405's Allow (which RFC 9110 requires), but not its HTML type.
        response.headers.extend((name, value) for name, value in error.get_headers() if name.lower() != "content-type")
        return response, error.code


def wants_page() -> bool:
    """The console is read in a browser; elsewhere a page only for a browser asking for one, JSON for the rest."""
    if request.blueprint == "console":
        return True
    browser = "text/html" in request.headers.get("Accept", "")
    return browser and request.blueprint in ("oauth", None) and request.method == "GET"
