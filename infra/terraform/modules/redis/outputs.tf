output "host" {
  description = "Service of the current primary (kept current by the operator on failover)."
  value       = "redis-master.${var.namespace}.svc"
}

output "sentinel" {
  description = "Sentinel service (for clients that discover the primary themselves)."
  value       = "redis-sentinel-sentinel.${var.namespace}.svc:26379"
}
