variable "namespace" {
  description = "Namespace of the InferenceServices (the platform namespace)."
  type        = string
}

variable "s3_endpoint" {
  description = "Object store endpoint (object-store module's output `endpoint`)."
  type        = string
}

variable "s3_region" {
  description = "S3 region."
  type        = string
  default     = "us-east-1"
}

variable "read_access_key" {
  description = "Read-only access key on the models bucket."
  type        = string
  sensitive   = true
}

variable "read_secret_key" {
  description = "Secret key of read_access_key."
  type        = string
  sensitive   = true
}
