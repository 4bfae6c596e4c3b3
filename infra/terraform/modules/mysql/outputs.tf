output "host" {
  description = "Primary's service (read/write)."
  value       = "mysql-primary.${var.namespace}.svc"
}

output "app_user" {
  description = "Least-privilege account of the functions."
  value       = "medflow_app"
}

output "migrate_user" {
  description = "Account of `medflow migrate`."
  value       = "medflow_migrate"
}
