# prod, stage 2: custom resources and Secrets (after ../1-operators is applied), then
# apply k8s/overlays/prod. Replicated everywhere: three KRaft controllers and brokers, MariaDB primary + 2 replicas, Redis with Sentinel failover, a 4-server MinIO pool.

module "platform" {
  source               = "../../../modules/platform"
  s3_external_endpoint = var.s3_external_endpoint
  secrets              = var.secrets
  size = {
    kafka_controllers     = 3
    kafka_brokers         = 3
    kafka_replication     = 3
    kafka_broker_storage  = "500Gi"
    minio_servers         = 4
    minio_volume_size     = "2Ti"
    mysql_replicas        = 3
    mysql_storage         = "500Gi"
    mysql_max_connections = 3000
    redis_replicas        = 3
    redis_sentinels       = 3
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
