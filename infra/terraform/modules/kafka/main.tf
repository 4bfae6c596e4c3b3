# Stage 2: a Strimzi Kafka cluster in KRaft mode (no ZooKeeper): one node pool of
# controllers and one of brokers, and the topics of events/catalogue.yaml with a
# dead-letter topic per consumer. Retries happen in Knative's delivery (Trigger
# retry/backoff), so retry topics are off by default; set retry_topic_pattern for
# consumers that park events in a retry topic themselves (e.g. long bulk jobs).

locals {
  labels = { "strimzi.io/cluster" = var.cluster_name, "app.kubernetes.io/part-of" = "medflow" }

  node_pools = [
    for pool in [
      { name = "controller", roles = ["controller"], replicas = var.controller_replicas, size = var.controller_storage },
      { name = "broker", roles = ["broker"], replicas = var.broker_replicas, size = var.broker_storage },
      ] : {
      apiVersion = "kafka.strimzi.io/v1beta2"
      kind       = "KafkaNodePool"
      metadata   = { name = pool.name, namespace = var.namespace, labels = local.labels }
      spec = {
        replicas = pool.replicas
        roles    = pool.roles
        storage = {
          type = "jbod"
          volumes = [{
            id            = 0
            type          = "persistent-claim"
            size          = pool.size
            class         = var.storage_class
            deleteClaim   = false
            kraftMetadata = "shared"
          }]
        }
        resources = pool.name == "broker" ? var.broker_resources : var.controller_resources
      }
    }
  ]

  kafka = {
    apiVersion = "kafka.strimzi.io/v1beta2"
    kind       = "Kafka"
    metadata = {
      name      = var.cluster_name
      namespace = var.namespace
      labels    = { "app.kubernetes.io/part-of" = "medflow", "medflow.org/state-store" = "true" }
      annotations = {
        "strimzi.io/node-pools" = "enabled"
        "strimzi.io/kraft"      = "enabled"
      }
    }
    spec = {
      kafka = {
        version = var.kafka_version
        listeners = [
          { name = "plain", port = 9092, type = "internal", tls = false },
          { name = "tls", port = 9093, type = "internal", tls = true },
        ]
        config = {
          "default.replication.factor"               = var.replication_factor
          "min.insync.replicas"                      = var.min_insync_replicas
          "offsets.topic.replication.factor"         = var.replication_factor
          "transaction.state.log.replication.factor" = var.replication_factor
          "transaction.state.log.min.isr"            = var.min_insync_replicas
          "auto.create.topics.enable"                = false
        }
      }
      entityOperator = { topicOperator = {}, userOperator = {} }
      # Consumer lag per group (Knative's Trigger consumer groups) as Prometheus metrics.
      kafkaExporter = { topicRegex = ".*", groupRegex = ".*" }
    }
  }

  retry_consumers = var.retry_topic_pattern == "" ? [] : var.consumers

  topics = merge(
    { for name, t in var.topics : name => {
      partitions = t.partitions
      config     = { "retention.ms" = t.retention_ms, "min.insync.replicas" = var.min_insync_replicas }
    } },
    { for consumer in var.consumers : "medflow.deadletter.${consumer}" => {
      partitions = 1
      config     = { "retention.ms" = var.dead_letter_retention_ms, "min.insync.replicas" = var.min_insync_replicas }
    } },
    { for consumer in local.retry_consumers : replace(var.retry_topic_pattern, "{group}", consumer) => {
      partitions = 3
      config     = { "retention.ms" = var.dead_letter_retention_ms, "min.insync.replicas" = var.min_insync_replicas }
    } },
  )

  topic_manifests = [
    for name, t in local.topics : {
      apiVersion = "kafka.strimzi.io/v1beta2"
      kind       = "KafkaTopic"
      # Topic names may hold dots and underscores; resource names may not.
      metadata = { name = replace(replace(name, ".", "-"), "_", "-"), namespace = var.namespace, labels = local.labels }
      spec = {
        topicName  = name
        partitions = t.partitions
        replicas   = var.replication_factor
        config     = t.config
      }
    }
  ]
}

resource "helm_release" "kafka" {
  name      = "medflow-kafka"
  namespace = var.namespace
  chart     = "${path.module}/../../charts/manifests"
  values    = [yamlencode({ manifests = concat([local.kafka], local.node_pools, local.topic_manifests) })]
  wait      = true
  timeout   = 900
}
