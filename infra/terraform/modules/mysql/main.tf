# Stage 2: MySQL-compatible SQL with the MariaDB operator (stage 1): a replicated MariaDB
# (primary + replicas, automatic primary failover) and least-privilege accounts:
#   medflow_app      DML only (SELECT, INSERT, UPDATE, DELETE) on the medflow schema; what
#                    every function uses (MEDFLOW_DATABASE_URL)
#   medflow_migrate  DDL on the medflow schema, for `medflow migrate` (a Job at release
#                    time), never given to a running function
#   medflow_report   SELECT only, for reporting and exports
# MedFlow's SQL stays TiDB-compatible, so a region can move to TiDB by changing the URL.

locals {
  labels = { "app.kubernetes.io/part-of" = "medflow" }
  users = {
    medflow-app     = { user = "medflow_app", privileges = ["SELECT", "INSERT", "UPDATE", "DELETE"], secret_key = "app-password" }
    medflow-migrate = { user = "medflow_migrate", privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX", "REFERENCES"], secret_key = "migrate-password" }
    medflow-report  = { user = "medflow_report", privileges = ["SELECT"], secret_key = "report-password" }
  }

  mariadb = {
    apiVersion = "k8s.mariadb.com/v1alpha1"
    kind       = "MariaDB"
    metadata = {
      name      = "mysql"
      namespace = var.namespace
      labels    = merge(local.labels, { "medflow.org/state-store" = "true" })
    }
    spec = {
      rootPasswordSecretKeyRef = { name = "medflow-mysql", key = "root-password" }
      replicas                 = var.replicas
      replication              = { enabled = var.replicas > 1 }
      storage                  = { size = var.storage_size, storageClassName = var.storage_class }
      myCnf                    = "[mariadb]\nmax_connections=${var.max_connections}\ncharacter_set_server=utf8mb4\ncollation_server=utf8mb4_unicode_ci\n"
      resources                = var.resources
      podDisruptionBudget      = { maxUnavailable = 1 }
      inheritMetadata          = { labels = merge(local.labels, { "medflow.org/state-store" = "true" }) }
    }
  }

  database = {
    apiVersion = "k8s.mariadb.com/v1alpha1"
    kind       = "Database"
    metadata   = { name = var.database, namespace = var.namespace, labels = local.labels }
    spec       = { mariaDbRef = { name = "mysql" }, characterSet = "utf8mb4", collate = "utf8mb4_unicode_ci" }
  }

  accounts = flatten([
    for name, u in local.users : [
      {
        apiVersion = "k8s.mariadb.com/v1alpha1"
        kind       = "User"
        metadata   = { name = name, namespace = var.namespace, labels = local.labels }
        spec = {
          mariaDbRef           = { name = "mysql" }
          name                 = u.user
          host                 = "%"
          passwordSecretKeyRef = { name = "medflow-mysql", key = u.secret_key }
          maxUserConnections   = var.max_user_connections
        }
      },
      {
        apiVersion = "k8s.mariadb.com/v1alpha1"
        kind       = "Grant"
        metadata   = { name = name, namespace = var.namespace, labels = local.labels }
        spec = {
          mariaDbRef  = { name = "mysql" }
          privileges  = u.privileges
          database    = var.database
          table       = "*"
          username    = u.user
          host        = "%"
          grantOption = false
        }
      },
    ]
  ])
}

resource "kubernetes_secret" "mysql" {
  metadata {
    name      = "medflow-mysql"
    namespace = var.namespace
  }
  data = {
    "root-password"    = var.root_password
    "app-password"     = var.app_password
    "migrate-password" = var.migrate_password
    "report-password"  = var.report_password
  }
}

resource "helm_release" "mysql" {
  name       = "medflow-mysql"
  namespace  = var.namespace
  chart      = "${path.module}/../../charts/manifests"
  values     = [yamlencode({ manifests = concat([local.mariadb, local.database], local.accounts) })]
  wait       = true
  timeout    = 900
  depends_on = [kubernetes_secret.mysql]
}
