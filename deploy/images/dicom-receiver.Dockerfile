# syntax=docker/dockerfile:1.7
# The DICOM C-STORE/C-ECHO receiver (`medflow dicom-scp`, from the imaging work): a
# long-running TCP service (DICOM upper layer, port 11112) that hospital modalities and
# PACS push to. It is a plain Deployment + Service (k8s/base/dicom), not a Knative
# Service: DICOM associations are long-lived TCP, not HTTP requests.
#   docker build -f deploy/images/dicom-receiver.Dockerfile -t medflow/dicom-receiver:<version> .

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY medflow ./medflow
# pydicom is a core dependency; pynetdicom comes with the `functions` extra.
RUN python -m venv /opt/medflow && /opt/medflow/bin/pip install -c constraints.txt ".[functions]"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="medflow-dicom-receiver" org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/medflow/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MEDFLOW_DATA_DIR=/tmp/medflow
RUN groupadd --system --gid 10001 medflow \
 && useradd --system --uid 10001 --gid medflow --no-create-home --shell /usr/sbin/nologin medflow
COPY --from=build /opt/medflow /opt/medflow
WORKDIR /app
COPY --chown=root:root events ./events
USER 10001:10001
# 11112 is the registered non-privileged DICOM port (104 would need root).
EXPOSE 11112
# A TCP connect to the DICOM port: the receiver accepts associations.
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 11112), 2).close()"]
ENTRYPOINT ["medflow", "dicom-scp"]
# --institution (required) is given by the Deployment (k8s/base/dicom/receiver.yaml).
CMD ["--host", "0.0.0.0", "--port", "11112"]
