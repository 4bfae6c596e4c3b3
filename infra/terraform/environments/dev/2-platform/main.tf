# dev, stage 2: custom resources and Secrets (after ../1-operators is applied), then
# apply k8s/overlays/dev. Small and single-replica: dev trades availability for cost.

module "platform" {
  source               = "../../../modules/platform"
  s3_external_endpoint = var.s3_external_endpoint
  secrets              = var.secrets
  size = {
    kafka_controllers     = 1
    kafka_brokers         = 1
    kafka_replication     = 1
    kafka_broker_storage  = "20Gi"
    minio_servers         = 1
    minio_volume_size     = "50Gi"
    mysql_replicas        = 1
    mysql_storage         = "20Gi"
    mysql_max_connections = 500
    redis_replicas        = 1
    redis_sentinels       = 1
  }
}

variable "s3_external_endpoint" {
  description = "S3-compatible endpoint to use instead of an in-cluster MinIO (empty: MinIO)."
  type        = string
  default     = ""
}

variable "secrets" {
  description = "Credentials (see modules/platform): pass TF_VAR_secrets from the secret manager."
  type        = any
  sensitive   = true
}

output "platform" {
  description = "Endpoints, topics, buckets and Secret names of the environment (see modules/platform/outputs.tf)."
  value       = module.platform
}
