# syntax=docker/dockerfile:1.7
# The model server, GPU variant: the same predictors with TensorRT FP16 engines (built
# from the ONNX export at first load and cached next to it) and ONNX Runtime's CUDA
# provider as the fallback. Runs on GPU-labelled nodes (k8s/base/models).
#   docker build -f deploy/images/model-server-gpu.Dockerfile -t medflow/model-server-gpu:<version> .

# NVIDIA's TensorRT runtime image (CUDA + cuDNN + TensorRT, Ubuntu, Python 3).
ARG TENSORRT_IMAGE=nvcr.io/nvidia/tensorrt:24.08-py3

FROM ${TENSORRT_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY medflow ./medflow
RUN python3 -m venv --system-site-packages /opt/medflow \
 && /opt/medflow/bin/pip install -c constraints.txt ".[models]" \
 && /opt/medflow/bin/pip install -c constraints.txt onnxruntime-gpu

FROM ${TENSORRT_IMAGE}
LABEL org.opencontainers.image.title="medflow-model-server-gpu" org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/medflow/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MEDFLOW_MODEL_DEVICE=cuda
RUN groupadd --system --gid 10001 medflow \
 && useradd --system --uid 10001 --gid medflow --no-create-home --shell /usr/sbin/nologin medflow
COPY --from=build /opt/medflow /opt/medflow
WORKDIR /app
COPY --chown=root:root kserve ./kserve
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python3", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=2).status != 200)"]
ENTRYPOINT ["medflow", "models", "serve"]
# The ServingRuntime passes --model-dir=/mnt/models --http-port=8080 --models=<name>;
# TensorRT engines (model.plan) are used where the artefact has one and a GPU is there.
CMD ["--http-port", "8080", "--model-dir", "/mnt/models"]
