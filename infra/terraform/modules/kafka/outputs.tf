output "bootstrap" {
  description = "Plain-text bootstrap address inside the cluster (MEDFLOW_KAFKA_BOOTSTRAP, KafkaSource, KafkaSinks)."
  value       = "${var.cluster_name}-kafka-bootstrap.${var.namespace}.svc:9092"
}

output "topics" {
  description = "Every topic created, dead-letter topics included."
  value       = sort(keys(local.topics))
}
