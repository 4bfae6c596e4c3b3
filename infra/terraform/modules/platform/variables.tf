variable "data_namespace" {
  description = "Namespace of the state stores (created in stage 1)."
  type        = string
  default     = "medflow-data"
}

variable "platform_namespace" {
  description = "Namespace of the functions, models and DICOM receiver (k8s/)."
  type        = string
  default     = "medflow"
}

variable "s3_external_endpoint" {
  description = "S3-compatible endpoint to use instead of an in-cluster MinIO (empty: MinIO)."
  type        = string
  default     = ""
}

variable "size" {
  description = "Replica counts and volume sizes of the state stores for this environment."
  type = object({
    kafka_controllers     = number
    kafka_brokers         = number
    kafka_replication     = number
    kafka_broker_storage  = string
    minio_servers         = number
    minio_volume_size     = string
    mysql_replicas        = number
    mysql_storage         = string
    mysql_max_connections = number
    redis_replicas        = number
    redis_sentinels       = number
  })
}

variable "secrets" {
  description = <<-EOT
    Credentials, from the secret manager (never in the repo): object store admin, the
    functions' and KServe's (read-only) S3 keys, MySQL root/app/migrate/report passwords,
    the Redis password and the JWT key set JSON.
  EOT
  type = object({
    s3_admin_access_key    = string
    s3_admin_secret_key    = string
    s3_app_access_key      = string
    s3_app_secret_key      = string
    s3_models_access_key   = string
    s3_models_secret_key   = string
    mysql_root_password    = string
    mysql_app_password     = string
    mysql_migrate_password = string
    mysql_report_password  = string
    redis_password         = string
    jwt_key_set_json       = string
  })
  sensitive = true
}
