# syntax=docker/dockerfile:1
#
# One image for every Tapeline process; the command picks the service:
#   python -m services.{connector,processor,query,signals}
#   tapeline migrate            (one-shot ClickHouse DDL migrations)
#
#   docker build -t ghcr.io/tapeline/tapeline:0.1.0 .
#   docker build --target dev -t tapeline:dev .     # + tools/ (the venue simulator), for compose's "sim" profile

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: install the project and its runtime dependencies into /opt/venv ----------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Runtime dependencies first (only [project].dependencies, never the dev extra), so this layer is
# rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# The project itself: hatchling packs src/tapeline and services/ and copies schemas/ into the wheel
# as tapeline/_schemas (see tapeline.paths.schemas_dir).
COPY src ./src
COPY services ./services
COPY schemas ./schemas
RUN pip install --no-deps . \
    && python -c "import tapeline.paths as p; assert p.schemas_dir().name == '_schemas', p.schemas_dir()"

# --- runtime ----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# tini as PID 1: forwards SIGTERM to the service and reaps children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 tapeline \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/tapeline \
        --shell /usr/sbin/nologin tapeline \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/tapeline

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/var/lib/tapeline \
    TAPELINE_QUERY__HOST=0.0.0.0 \
    TAPELINE_SIMULATOR__HOST=0.0.0.0

# Working directory = writable state directory (e.g. the stream processor's local data dir);
# Kubernetes mounts an emptyDir here because the root filesystem is read-only there.
WORKDIR /var/lib/tapeline
USER 10001:10001

# gRPC query service, Prometheus metrics and health, venue simulator (dev stage)
EXPOSE 50051 9000 9443

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["tapeline", "--help"]

# --- dev: the runtime image plus the developer tools (never shipped in the wheel) ----------------
FROM runtime AS dev
COPY --chown=10001:10001 tools /opt/tapeline/tools
ENV PYTHONPATH=/opt/tapeline
