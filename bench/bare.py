"""The bare endpoint `make bench` compares the execution endpoint with: Flask answering `{"ok": true}` to any
request, under the same gunicorn command, workers and threads, so the ratio of the two throughputs is what our
own work per delivery costs (verify, validate, record, enqueue), the server and the client being the same.

    gunicorn "bench.bare:create_app()"
"""

from flask import Flask, jsonify


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def ok(path):
        return jsonify(ok=True)

    return app
