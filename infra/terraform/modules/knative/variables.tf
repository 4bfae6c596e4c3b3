variable "knative_version" {
  description = "Knative Serving and Eventing version the operator installs (e.g. 1.20)."
  type        = string
  default     = "1.20"
}

variable "kafka_manifest_urls" {
  description = "Release manifests of Knative's Kafka data plane (controller, broker, source, sink), applied by the Knative Operator. Point them at a mirror in air-gapped clusters."
  type        = list(string)
  default = [
    "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.20.0/eventing-kafka-controller.yaml",
    "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.20.0/eventing-kafka-broker.yaml",
    "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.20.0/eventing-kafka-source.yaml",
    "https://github.com/knative-extensions/eventing-kafka-broker/releases/download/knative-v1.20.0/eventing-kafka-sink.yaml",
  ]
}

variable "kafka_bootstrap" {
  description = "Kafka bootstrap address (the kafka module's output `bootstrap`)."
  type        = string
}

variable "internal_domain" {
  description = "Domain of Knative's own routes (cluster-local; the web origin is the Ingress of k8s/)."
  type        = string
  default     = "svc.cluster.local"
}

variable "max_revision_timeout_seconds" {
  description = "Largest timeoutSeconds a Knative Service may set (Knative's default is 600); at least the largest timeout_s of k8s/platform.yaml."
  type        = number
  default     = 900
}

variable "broker_topic_partitions" {
  description = "Partitions of the Kafka Broker's storage topic."
  type        = number
  default     = 6
}

variable "broker_topic_replication" {
  description = "Replication factor of the Kafka Broker's storage topic (3 in production)."
  type        = number
  default     = 3
}
