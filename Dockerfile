# Sentiment service image: CPU-only PyTorch, the shipped checkpoint, a non-root user.
#
#   docker build -t sentiment-rnn .
#   docker run -p 8000:8000 sentiment-rnn            # then: curl localhost:8000/health
#   docker run -p 9000:9000 -e PORT=9000 --cpus=2 sentiment-rnn   # 2 workers (WORKERS=N to set)
#
# Works with BuildKit and with the classic builder (no `# syntax=` line, nothing to pull
# but BASE_IMAGE). Offline builds (deploy/docker-test.sh) pass a locally built
# BASE_IMAGE and stage local wheels and a CA bundle in deploy/build-extras/, which is
# empty otherwise; only the deps/builder stages see them, the runtime stage gets /opt/venv.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------- deps
# Runtime dependencies only (from pyproject.toml, no extras): the slow, rarely changing part,
# a stage of its own so it can be cached (deploy/docker-test.sh tags it).
FROM ${BASE_IMAGE} AS deps
LABEL sentiment-rnn.stage=deps

# Where CPU-only torch wheels come from; empty = only PyPI + deploy/build-extras/wheels.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL=https://pypi.org/simple

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=120 \
    PIP_INDEX_URL=${PIP_INDEX_URL}

# binutils (`strip`, for deploy/slim-venv.sh) lives in the build stages only.
RUN set -eu; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends binutils >/dev/null; \
    rm -rf /var/lib/apt/lists/*

COPY deploy/build-extras/ /tmp/build-extras/
RUN python3 -m venv /opt/venv

COPY pyproject.toml /src/
RUN set -eu; \
    if [ -f /tmp/build-extras/ca-certificates.crt ]; then \
        export PIP_CERT=/tmp/build-extras/ca-certificates.crt; fi; \
    mkdir -p /tmp/build-extras/wheels; \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt; \
    /opt/venv/bin/pip install --find-links /tmp/build-extras/wheels \
        ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} -r /tmp/requirements.txt; \
    /opt/venv/bin/python -c "import torch; assert torch.version.cuda is None, 'CUDA torch'; print('torch', torch.__version__)"

# ---------------------------------------------------------------------------- builder
FROM deps AS builder
LABEL sentiment-rnn.stage=builder

# Cut the venv to what CPU inference needs (stripped libraries, no sympy/networkx, no
# torch compiler, headers or tests; see the script). 0 keeps every installed file.
ARG SLIM=1
COPY deploy/slim-venv.sh /tmp/slim-venv.sh

# The project itself, installed as a regular (non-editable) package.
COPY model/ /src/model/
COPY service/ /src/service/
COPY pyproject.toml README.md* /src/
RUN set -eu; \
    if [ -f /tmp/build-extras/ca-certificates.crt ]; then \
        export PIP_CERT=/tmp/build-extras/ca-certificates.crt; fi; \
    cd /src; \
    [ -f README.md ] || echo "# sentiment-rnn" > README.md; \
    /opt/venv/bin/pip install --no-deps . ; \
    /opt/venv/bin/pip check; \
    if [ "$SLIM" = 1 ]; then sh /tmp/slim-venv.sh /opt/venv; fi; \
    /opt/venv/bin/pip uninstall -q -y pip setuptools

# The checkpoint, readable by the non-root user whatever its modes in the working tree
# (safetensors writes 0600); staged here because COPY --chmod needs BuildKit.
COPY artifacts/review-sentiment/ /opt/checkpoint/
RUN chmod -R u=rwX,go=rX /opt/checkpoint

# ---------------------------------------------------------------------------- runtime
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="sentiment-rnn" \
      org.opencontainers.image.description="IMDB review sentiment classifier served over HTTP (FastAPI, CPU PyTorch)"

RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/checkpoint/ /app/artifacts/review-sentiment/

# Everything the service reads is configurable with `docker run -e NAME=value`.
# WORKERS is left to the service: one worker per CPU the container may use (`--cpus`, the
# cgroup quota, or its cpuset), each on one torch thread (TORCH_THREADS=1).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/app \
    HOST=0.0.0.0 \
    PORT=8000 \
    MODEL_DIR=/app/artifacts/review-sentiment \
    TORCH_THREADS=1

WORKDIR /app
USER 10001:10001
EXPOSE 8000

# 200 only once the model is loaded and while not draining; no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)"

# Exec form: python is PID 1 and gets `docker stop`'s SIGTERM itself (graceful drain of every
# worker, exit 0); it also reaps its workers, so no init process is needed.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
