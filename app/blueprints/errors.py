"""JSON errors: every refusal says why, in a body a machine and a person can read."""

from flask import jsonify, render_template, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from app.hubspot.signature import InvalidSignature
from app.schemas import error_reasons


def init_app(app):
    @app.errorhandler(InvalidSignature)
    def invalid_signature(error):
        return jsonify({"error": "invalid_signature", "reason": error.reason}), 401

    @app.errorhandler(ValidationError)
    def invalid_request(error):
        return jsonify({"error": "invalid_request", "reasons": error_reasons(error.messages)}), 400

    @app.errorhandler(HTTPException)
    def http_error(error):
        if wants_page():
            return render_template("console/error.html", error=error), error.code
        return jsonify({"error": error.name.lower().replace(" ", "_"), "reason": error.description}), error.code


def wants_page() -> bool:
    """The console is read in a browser; elsewhere a page only for a browser asking for one, JSON for the rest."""
    if request.blueprint == "console":
        return True
    browser = "text/html" in request.headers.get("Accept", "")
    return browser and request.blueprint in ("oauth", None) and request.method == "GET"
