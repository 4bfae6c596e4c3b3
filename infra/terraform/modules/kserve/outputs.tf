output "storage_secret" {
  description = "Secret listed on the medflow-models ServiceAccount."
  value       = kubernetes_secret.models_s3.metadata[0].name
}
