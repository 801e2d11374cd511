# syntax=docker/dockerfile:1
# qbo-actions: one image for the web server (the default command), the job worker and the migrations.
#
#   docker build -t qbo-actions .
#   docker run --env-file .env -p 8000:8000 qbo-actions                    # web: gunicorn on $PORT (8000)
#   docker run --env-file .env qbo-actions flask --app app worker          # the job worker
#   docker run --env-file .env qbo-actions flask --app app db upgrade      # migrations, before a new version
#
# compose.yaml runs them together with PostgreSQL and Redis. The final image holds Python, the installed wheels
# and two files: no compiler, no source tree, no pip cache; it runs as uid 10001.

# -- builder: every dependency and the app itself as wheels ---------------------------------------------------
FROM python:3.12-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY actions ./actions
COPY app ./app
RUN --mount=type=cache,target=/root/.cache/pip \
    pip wheel --wheel-dir /wheels .

# -- runtime ---------------------------------------------------------------------------------------------------
FROM python:3.12-slim AS runtime
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000 \
    LOG_FORMAT=json \
    INSTANCE_PATH=/srv/qbo-actions/instance \
    HUBSPOT_APP_FILE=/srv/qbo-actions/hubspot-app.json \
    PROMETHEUS_MULTIPROC_DIR=/run/qbo-actions/metrics

# A fixed uid and gid, so volumes and Kubernetes' runAsNonRoot/runAsUser can name them.
RUN groupadd --system --gid 10001 qbo \
    && useradd --system --uid 10001 --gid qbo --home-dir /srv/qbo-actions --no-create-home --shell /usr/sbin/nologin qbo

# Installed from the builder's wheels only (--no-index): nothing is compiled or downloaded here.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels --root-user-action=ignore /wheels/qbo_actions-*.whl

WORKDIR /srv/qbo-actions
COPY hubspot-app.json gunicorn.conf.py ./
# The instance folder (development keys, SQLite when DATABASE_URL is unset) and the metrics directory are the
# only places the server writes.
RUN mkdir -p "$INSTANCE_PATH" "$PROMETHEUS_MULTIPROC_DIR" \
    && chown qbo:qbo "$INSTANCE_PATH" "$PROMETHEUS_MULTIPROC_DIR"

USER 10001:10001
EXPOSE 8000

# Liveness only (no database): /readyz is for the load balancer, see the README.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
