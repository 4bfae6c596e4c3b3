# syntax=docker/dockerfile:1.7
# The event relay (`medflow relay`): reads Kafka topics and POSTs CloudEvents to consumer
# functions with the catalogue's retry and dead-letter rules. It plays KafkaSource where
# there is no Knative Eventing (a laptop, Compose, a VM). In the cluster it is NOT
# deployed: the Kafka Broker + Triggers in k8s/base/eventing do its job.
#   docker build -f deploy/images/relay.Dockerfile -t medflow/relay:<version> .

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY medflow ./medflow
RUN python -m venv /opt/medflow && /opt/medflow/bin/pip install -c constraints.txt .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="medflow-relay" org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/medflow/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 medflow \
 && useradd --system --uid 10001 --gid medflow --no-create-home --shell /usr/sbin/nologin medflow
COPY --from=build /opt/medflow /opt/medflow
WORKDIR /app
COPY --chown=root:root events ./events
USER 10001:10001
# No HTTP endpoint to probe: the relay is a Kafka consumer; its liveness is the process.
HEALTHCHECK NONE
ENTRYPOINT ["medflow", "relay"]
# e.g. --bootstrap kafka:9092 --route audit_sink=http://audit-sink/=org.medflow.audit.*
CMD ["--help"]
