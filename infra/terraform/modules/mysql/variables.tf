variable "namespace" {
  description = "Namespace of the database (the data namespace)."
  type        = string
}

variable "database" {
  description = "Schema MedFlow uses."
  type        = string
  default     = "medflow"
}

variable "replicas" {
  description = "MariaDB pods: 1 (dev) or 3 (prod: primary + 2 replicas with automatic failover)."
  type        = number
  default     = 3
}

variable "storage_size" {
  description = "Volume size of each MariaDB pod."
  type        = string
  default     = "100Gi"
}

variable "storage_class" {
  description = "StorageClass (null: the cluster default)."
  type        = string
  default     = null
}

variable "resources" {
  description = "Requests and limits of a MariaDB pod."
  type        = any
  default     = { requests = { cpu = "1", memory = "4Gi" }, limits = { memory = "4Gi" } }
}

variable "max_connections" {
  description = "Server max_connections: at least the sum over functions of max-scale x MEDFLOW_DATABASE_POOL_SIZE."
  type        = number
  default     = 2000
}

variable "max_user_connections" {
  description = "Connection limit per application account."
  type        = number
  default     = 1500
}

variable "root_password" {
  description = "Root password (operators only; never given to MedFlow)."
  type        = string
  sensitive   = true
}

variable "app_password" {
  description = "Password of medflow_app (DML only)."
  type        = string
  sensitive   = true
}

variable "migrate_password" {
  description = "Password of medflow_migrate (DDL, for migrations)."
  type        = string
  sensitive   = true
}

variable "report_password" {
  description = "Password of medflow_report (SELECT only)."
  type        = string
  sensitive   = true
}
