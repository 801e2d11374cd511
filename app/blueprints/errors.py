"""JSON errors: every refusal says why, in a body a machine and a person can read."""

from flask import jsonify
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
        return jsonify({"error": error.name.lower().replace(" ", "_"), "reason": error.description}), error.code
