# alikafka-exporter container image.
#
#   docker build -t alikafka-exporter .
#   docker run --rm --read-only -p 9897:9897 alikafka-exporter --demo
#
# Two stages: "build" turns the source into wheels (the project's and its dependencies'); the
# runtime stage installs only those wheels into a virtual environment, so the image carries no
# source tree, no build backend and no pip. It runs as a numeric non-root user and writes
# nothing to its file system, so it works with a read-only root. BASE_IMAGE is any Debian-like
# image with python3 (3.11 or later) and its venv module; see docs/deploy.md.
#
# The default base is python:3.12-slim pinned by the digest of its multi-platform index (amd64 and arm64),
# so a build is repeatable and a new base arrives only as a reviewed change. It is written as a stage of
# its own because Dependabot reads image references only from FROM lines, not from ARG defaults
# (dependabot-core#2057): the default BASE_IMAGE names that stage, and a stage nothing uses is not pulled.
# The weekly rebuild passes BASE_IMAGE=python:3.12-slim to build on the freshest base (docs/releasing.md).
ARG BASE_IMAGE=python-base
# VERSION is the release's version (the git tag without its "v"); the build context has no git history,
# so it is handed to the build backend here. Its default is the last release (tests check they agree).
ARG VERSION=0.1.0

FROM python:3.12-slim@sha256:e5c9fa26ffb76e11e0f054f30dc2523a2f9693f0c36c0cf1e39b27e152d899fc AS python-base

FROM ${BASE_IMAGE} AS build
ARG VERSION
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    SETUPTOOLS_SCM_PRETEND_VERSION=${VERSION}
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --wheel-dir /wheels .

FROM ${BASE_IMAGE}
ARG VERSION
LABEL org.opencontainers.image.title="alikafka-exporter" \
      org.opencontainers.image.description="Prometheus exporter for consumer lag on Alibaba Cloud Message Queue for Apache Kafka (alikafka)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/alikafka-exporter/bin:${PATH} \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Offline install from the build stage's wheels (bind-mounted, so they stay out of the layers),
# byte-compiled now because the root file system is read-only at run time; then pip goes.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python3 -m venv /opt/alikafka-exporter \
    && /opt/alikafka-exporter/bin/pip install --no-index --find-links=/wheels alikafka-exporter \
    && /opt/alikafka-exporter/bin/pip uninstall --yes pip setuptools \
    && test "$(alikafka-exporter --version)" = "alikafka-exporter ${VERSION}"
USER 65532:65532
EXPOSE 9897
ENTRYPOINT ["alikafka-exporter"]
CMD ["--config.file=/etc/alikafka-exporter/config.yaml"]
