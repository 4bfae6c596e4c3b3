variable "data_namespace" {
  description = "Namespace of the state stores (Kafka, MySQL, Redis, MinIO); the operators watch it."
  type        = string
  default     = "medflow-data"
}

variable "install_cert_manager" {
  description = "Install cert-manager (KServe's webhooks and the web origin's TLS certificate need it). Set false when the cluster already has it."
  type        = bool
  default     = true
}

variable "install_minio_operator" {
  description = "Install the MinIO operator. Set false when the object store is an external S3-compatible endpoint."
  type        = bool
  default     = true
}

variable "versions" {
  description = "Chart versions of the operators (pin them; upgrade one at a time)."
  type = object({
    cert_manager     = string
    knative_operator = string
    strimzi          = string
    mariadb_operator = string
    redis_operator   = string
    minio_operator   = string
    kserve           = string
  })
  default = {
    cert_manager     = "v1.19.1"
    knative_operator = "v1.20.0"
    strimzi          = "0.49.0"
    mariadb_operator = "25.10.2"
    redis_operator   = "0.22.2"
    minio_operator   = "7.1.1"
    kserve           = "v0.16.0"
  }
}
