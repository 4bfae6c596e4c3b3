output "namespace" {
  description = "The platform namespace, labelled medflow.org/platform=true (allowed to reach the state stores)."
  value       = kubernetes_namespace.platform.metadata[0].name
}

output "secrets" {
  description = "Secrets the manifests of k8s/ reference."
  value       = [kubernetes_secret.medflow.metadata[0].name, kubernetes_secret.jwt.metadata[0].name]
}
