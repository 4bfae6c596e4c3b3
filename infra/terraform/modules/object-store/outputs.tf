output "endpoint" {
  description = "S3 endpoint for MEDFLOW_S3_ENDPOINT and KServe's storage initializer."
  value       = local.endpoint
}

output "buckets" {
  description = "Buckets created."
  value       = local.buckets
}
