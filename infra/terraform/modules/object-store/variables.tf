variable "namespace" {
  description = "Namespace of the MinIO tenant and the bucket Job."
  type        = string
}

variable "external_endpoint" {
  description = "URL of an S3-compatible service to use instead of an in-cluster MinIO tenant (empty: deploy MinIO)."
  type        = string
  default     = ""
}

variable "region" {
  description = "S3 region (MEDFLOW_S3_REGION)."
  type        = string
  default     = "us-east-1"
}

variable "bucket_prefix" {
  description = "Prefix of the buckets (MEDFLOW_S3_BUCKET_PREFIX)."
  type        = string
  default     = "medflow"
}

variable "admin_access_key" {
  description = "Access key allowed to create buckets and set lifecycle rules (MinIO: the tenant's root user)."
  type        = string
  sensitive   = true
}

variable "admin_secret_key" {
  description = "Secret key of admin_access_key."
  type        = string
  sensitive   = true
}

variable "minio_servers" {
  description = "MinIO servers in the tenant's pool (4+ for erasure coding across nodes)."
  type        = number
  default     = 4
}

variable "minio_volumes_per_server" {
  description = "Volumes per MinIO server."
  type        = number
  default     = 2
}

variable "minio_volume_size" {
  description = "Size of each MinIO volume."
  type        = string
  default     = "500Gi"
}

variable "storage_class" {
  description = "StorageClass of MinIO's volumes (null: the cluster default)."
  type        = string
  default     = null
}

variable "aws_cli_image" {
  description = "Image with the AWS CLI, used to create buckets and lifecycle rules on any S3 endpoint."
  type        = string
  default     = "public.ecr.aws/aws-cli/aws-cli:2.31.0"
}

variable "export_expiry_days" {
  description = "Days an export file stays downloadable."
  type        = number
  default     = 7
}

variable "render_expiry_days" {
  description = "Days a cached render is kept."
  type        = number
  default     = 30
}

variable "archive_transition_days" {
  description = "Days after which archived objects move to the cold tier."
  type        = number
  default     = 30
}

variable "archive_storage_class" {
  description = "Storage class (AWS: GLACIER, DEEP_ARCHIVE) or MinIO remote tier name of the archive tier."
  type        = string
  default     = "GLACIER"
}

variable "archive_retention_days" {
  description = "Days archived objects are kept in total (medical records: often 10+ years)."
  type        = number
  default     = 3650
}
