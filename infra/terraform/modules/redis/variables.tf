variable "namespace" {
  description = "Namespace of Redis (the data namespace)."
  type        = string
}

variable "replicas" {
  description = "Redis pods (one primary, the rest replicas): 1 in dev, 3 in prod."
  type        = number
  default     = 3
}

variable "sentinels" {
  description = "Sentinels deciding failover (odd; 3 in prod)."
  type        = number
  default     = 3
}

variable "redis_image" {
  description = "Redis server image."
  type        = string
  default     = "quay.io/opstree/redis:v7.2.7"
}

variable "sentinel_image" {
  description = "Redis Sentinel image."
  type        = string
  default     = "quay.io/opstree/redis-sentinel:v7.2.7"
}

variable "storage_size" {
  description = "Volume per Redis pod (AOF persistence of locks and rate limits is not needed; the cache is rebuilt)."
  type        = string
  default     = "10Gi"
}

variable "storage_class" {
  description = "StorageClass (null: the cluster default)."
  type        = string
  default     = null
}

variable "resources" {
  description = "Requests and limits of a Redis pod."
  type        = any
  default     = { requests = { cpu = "250m", memory = "1Gi" }, limits = { memory = "2Gi" } }
}

variable "password" {
  description = "Redis password (goes into MEDFLOW_REDIS_URL)."
  type        = string
  sensitive   = true
}
