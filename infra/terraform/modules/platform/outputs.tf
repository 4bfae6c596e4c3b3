output "kafka_bootstrap" {
  description = "MEDFLOW_KAFKA_BOOTSTRAP (k8s/base/core/config.yaml must match)."
  value       = module.kafka.bootstrap
}

output "kafka_topics" {
  description = "Topics created, dead-letter topics included."
  value       = module.kafka.topics
}

output "s3_endpoint" {
  description = "MEDFLOW_S3_ENDPOINT (k8s/base/core/config.yaml must match)."
  value       = module.object_store.endpoint
}

output "buckets" {
  description = "Buckets created."
  value       = module.object_store.buckets
}

output "mysql_host" {
  description = "MySQL primary service."
  value       = module.mysql.host
}

output "redis_host" {
  description = "Redis primary service."
  value       = module.redis.host
}

output "platform_secrets" {
  description = "Secrets written into the platform namespace for k8s/."
  value       = module.platform_secrets.secrets
}
