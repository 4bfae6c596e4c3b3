# syntax=docker/dockerfile:1.7
# The model server: the KServe predictors of kserve/<model>/ on ONNX Runtime (CPU).
# One image serves any of the five models (`medflow models serve`); the InferenceService
# says which (`--models <name>`) and KServe's storage initializer puts the artefact in
# /mnt/models.
# GPU variant with TensorRT: model-server-gpu.Dockerfile.
#   docker build -f deploy/images/model-server.Dockerfile -t medflow/model-server:<version> .

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY medflow ./medflow
# The `models` extra (kserve, onnxruntime, numpy, pillow) is filled in by the models work.
RUN python -m venv /opt/medflow && /opt/medflow/bin/pip install -c constraints.txt ".[models]"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="medflow-model-server" org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/medflow/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MEDFLOW_MODEL_DEVICE=cpu
RUN groupadd --system --gid 10001 medflow \
 && useradd --system --uid 10001 --gid medflow --no-create-home --shell /usr/sbin/nologin medflow
COPY --from=build /opt/medflow /opt/medflow
WORKDIR /app
COPY --chown=root:root kserve ./kserve
USER 10001:10001
EXPOSE 8080
# KServe's model server answers /v2/health/ready once the model is loaded.
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2).status != 200)"]
ENTRYPOINT ["medflow", "models", "serve"]
# The ServingRuntime passes --model-dir=/mnt/models --http-port=8080 --models=<name>;
# the CPU image never looks for TensorRT.
CMD ["--http-port", "8080", "--model-dir", "/mnt/models", "--cpu"]
