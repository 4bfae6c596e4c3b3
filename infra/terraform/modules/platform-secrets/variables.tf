variable "namespace" {
  description = "The platform namespace (functions, models, DICOM receiver)."
  type        = string
  default     = "medflow"
}

variable "database_host" {
  description = "MySQL host (mysql module's output `host`)."
  type        = string
}

variable "database_name" {
  description = "Schema."
  type        = string
  default     = "medflow"
}

variable "database_user" {
  description = "Least-privilege application account (mysql module's output `app_user`)."
  type        = string
}

variable "database_password" {
  description = "Its password."
  type        = string
  sensitive   = true
}

variable "migrate_user" {
  description = "DDL account of `medflow migrate` (mysql module's output `migrate_user`; k8s/jobs/migrate.yaml)."
  type        = string
}

variable "migrate_password" {
  description = "Its password."
  type        = string
  sensitive   = true
}

variable "redis_host" {
  description = "Redis primary service (redis module's output `host`)."
  type        = string
}

variable "redis_password" {
  description = "Redis password."
  type        = string
  sensitive   = true
}

variable "s3_access_key" {
  description = "Access key of the functions on the medflow-* buckets."
  type        = string
  sensitive   = true
}

variable "s3_secret_key" {
  description = "Its secret key."
  type        = string
  sensitive   = true
}

variable "jwt_key_set_json" {
  description = "The Ed25519 JWT key set (MEDFLOW_JWT_KEYS_FILE's content)."
  type        = string
  sensitive   = true
}
