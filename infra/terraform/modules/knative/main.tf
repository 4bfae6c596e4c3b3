# Stage 2: Knative Serving (Kourier gateway, cluster-local by default, scale to zero) and
# Knative Eventing with the Kafka Broker, KafkaSource and KafkaSink, as custom resources
# of the Knative Operator (stage 1).

locals {
  manifests = [
    {
      apiVersion = "v1"
      kind       = "Namespace"
      metadata   = { name = "knative-serving" }
    },
    {
      apiVersion = "v1"
      kind       = "Namespace"
      metadata   = { name = "knative-eventing" }
    },
    {
      apiVersion = "operator.knative.dev/v1beta1"
      kind       = "KnativeServing"
      metadata   = { name = "knative-serving", namespace = "knative-serving" }
      spec = {
        version = var.knative_version
        ingress = { kourier = { enabled = true } }
        config = {
          network = { "ingress-class" = "kourier.ingress.networking.knative.dev" }
          domain  = { (var.internal_domain) = "" }
          # Functions set their own timeoutSeconds (k8s/platform.yaml timeout_s): uploads,
          # bulk jobs and document ingestion 900 s, the analyses progress stream 660 s.
          # Knative rejects a Service above max-revision-timeout-seconds (default 600).
          defaults = {
            "max-revision-timeout-seconds" = tostring(var.max_revision_timeout_seconds)
          }
          autoscaler = {
            "enable-scale-to-zero"       = "true"
            "scale-to-zero-grace-period" = "30s"
            "stable-window"              = "60s"
            # Functions declare their own targets (k8s/platform.yaml); this is the fallback.
            "container-concurrency-target-default" = "100"
          }
          features = {
            "kubernetes.podspec-securitycontext" = "enabled"
            "kubernetes.podspec-emptydir"        = "enabled"
          }
        }
      }
    },
    {
      apiVersion = "operator.knative.dev/v1beta1"
      kind       = "KnativeEventing"
      metadata   = { name = "knative-eventing", namespace = "knative-eventing" }
      spec = {
        version = var.knative_version
        # Knative's Kafka data plane: the Kafka Broker, KafkaSource and KafkaSink.
        additionalManifests = [for url in var.kafka_manifest_urls : { URL = url }]
        config = {
          "config-br-defaults" = {
            "default-br-config" = yamlencode({
              clusterDefault = {
                brokerClass = "Kafka"
                apiVersion  = "v1"
                kind        = "ConfigMap"
                name        = "kafka-broker-config"
                namespace   = "knative-eventing"
              }
            })
          }
        }
      }
    },
    {
      # Where the Kafka Broker keeps its events: the Strimzi cluster of the kafka module.
      apiVersion = "v1"
      kind       = "ConfigMap"
      metadata   = { name = "kafka-broker-config", namespace = "knative-eventing" }
      data = {
        "default.topic.partitions"         = tostring(var.broker_topic_partitions)
        "default.topic.replication.factor" = tostring(var.broker_topic_replication)
        "bootstrap.servers"                = var.kafka_bootstrap
      }
    },
  ]
}

resource "helm_release" "knative" {
  name      = "medflow-knative"
  namespace = "knative-operator"
  chart     = "${path.module}/../../charts/manifests"
  values    = [yamlencode({ manifests = local.manifests })]
  wait      = true
}
