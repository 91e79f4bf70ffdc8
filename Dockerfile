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
ARG BASE_IMAGE=python:3.12-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --wheel-dir /wheels .

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
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
    && alikafka-exporter --version
USER 65532:65532
EXPOSE 9897
ENTRYPOINT ["alikafka-exporter"]
CMD ["--config.file=/etc/alikafka-exporter/config.yaml"]
