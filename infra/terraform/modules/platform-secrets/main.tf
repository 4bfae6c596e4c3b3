# Stage 2: the platform namespace and the Secrets every MedFlow container reads (names and
# keys as k8s/generate.py SECRET_ENV expects). Values come from the other modules' outputs
# and from sensitive variables (a secret manager, TF_VAR_*), never from the repo.

resource "kubernetes_namespace" "platform" {
  metadata {
    name = var.namespace
    labels = {
      "app.kubernetes.io/part-of"          = "medflow"
      "medflow.org/platform"               = "true"
      "pod-security.kubernetes.io/enforce" = "baseline"
      "pod-security.kubernetes.io/warn"    = "restricted"
    }
  }
}

resource "kubernetes_secret" "medflow" {
  metadata {
    name      = "medflow-secrets"
    namespace = kubernetes_namespace.platform.metadata[0].name
  }
  data = {
    "database-url"         = "mysql+aiomysql://${var.database_user}:${urlencode(var.database_password)}@${var.database_host}:3306/${var.database_name}"
    "database-migrate-url" = "mysql+pymysql://${var.migrate_user}:${urlencode(var.migrate_password)}@${var.database_host}:3306/${var.database_name}"
    "redis-url"            = "redis://:${urlencode(var.redis_password)}@${var.redis_host}:6379/0"
    "s3-access-key"        = var.s3_access_key
    "s3-secret-key"        = var.s3_secret_key
  }
}

resource "kubernetes_secret" "jwt" {
  metadata {
    name      = "medflow-jwt"
    namespace = kubernetes_namespace.platform.metadata[0].name
  }
  # {"active": kid, "keys": [{"kid", "private_pem", "public_pem"}]} (README: key rotation).
  data = { "keys.json" = var.jwt_key_set_json }
}
