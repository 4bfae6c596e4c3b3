variable "namespace" {
  description = "Namespace of the Kafka cluster (the data namespace the Strimzi operator watches)."
  type        = string
}

variable "cluster_name" {
  description = "Strimzi cluster name; the bootstrap service is <name>-kafka-bootstrap."
  type        = string
  default     = "medflow"
}

variable "kafka_version" {
  description = "Kafka version (one the installed Strimzi release supports)."
  type        = string
  default     = "4.1.1"
}

variable "controller_replicas" {
  description = "KRaft controllers (odd: 3 tolerates one loss)."
  type        = number
  default     = 3
}

variable "broker_replicas" {
  description = "Brokers."
  type        = number
  default     = 3
}

variable "controller_storage" {
  description = "Persistent volume size of each controller."
  type        = string
  default     = "10Gi"
}

variable "broker_storage" {
  description = "Persistent volume size of each broker."
  type        = string
  default     = "100Gi"
}

variable "storage_class" {
  description = "StorageClass of the volumes (null: the cluster default)."
  type        = string
  default     = null
}

variable "broker_resources" {
  description = "Requests and limits of a broker pod."
  type        = any
  default     = { requests = { cpu = "1", memory = "4Gi" }, limits = { memory = "4Gi" } }
}

variable "controller_resources" {
  description = "Requests and limits of a controller pod."
  type        = any
  default     = { requests = { cpu = "250m", memory = "1Gi" }, limits = { memory = "1Gi" } }
}

variable "replication_factor" {
  description = "Replication factor of every topic (1 in dev, 3 in prod)."
  type        = number
  default     = 3
}

variable "min_insync_replicas" {
  description = "min.insync.replicas (replication_factor - 1 in prod: one broker may be down)."
  type        = number
  default     = 2
}

variable "topics" {
  description = "The topics of events/catalogue.yaml: name => partitions and retention (ms)."
  type = map(object({
    partitions   = number
    retention_ms = number
  }))
  default = {
    "medflow.analysis"  = { partitions = 6, retention_ms = 604800000 } # P7D
    "medflow.audit"     = { partitions = 3, retention_ms = 604800000 } # P7D
    "medflow.imaging"   = { partitions = 3, retention_ms = 604800000 } # P7D
    "medflow.jobs"      = { partitions = 3, retention_ms = 604800000 } # P7D
    "medflow.knowledge" = { partitions = 3, retention_ms = 604800000 } # P7D
  }
}

variable "consumers" {
  description = "Consumer groups of events/catalogue.yaml; each gets its dead-letter topic medflow.deadletter.<consumer>."
  type        = list(string)
  default     = ["analysis_worker", "audit_sink", "imaging_arrivals", "job_worker", "knowledge_ingest"]
}

variable "dead_letter_retention_ms" {
  description = "How long dead-lettered events are kept for inspection and replay (default 30 days)."
  type        = number
  default     = 2592000000
}

variable "retry_topic_pattern" {
  description = "Name pattern of per-consumer retry topics, e.g. \"medflow.retry.{group}\" (empty: none; Knative's Trigger delivery retries)."
  type        = string
  default     = ""
}
