# Stage 1: the operators and controllers whose charts install CRDs. Applied from
# environments/<env>/1-operators, in its own state, before anything that creates their
# custom resources (stage 2, environments/<env>/2-platform). See ../../README.md.

# The state stores' namespace: the operators below watch it (Strimzi binds its roles there
# at install time), and the NetworkPolicies of k8s/base/network protect it.
resource "kubernetes_namespace" "data" {
  metadata {
    name = var.data_namespace
    labels = {
      "app.kubernetes.io/part-of"          = "medflow"
      "pod-security.kubernetes.io/enforce" = "baseline"
    }
  }
}

resource "helm_release" "cert_manager" {
  count            = var.install_cert_manager ? 1 : 0
  name             = "cert-manager"
  namespace        = "cert-manager"
  create_namespace = true
  repository       = "https://charts.jetstack.io"
  chart            = "cert-manager"
  version          = var.versions.cert_manager
  values           = [yamlencode({ crds = { enabled = true } })]
  wait             = true
}

resource "helm_release" "knative_operator" {
  name             = "knative-operator"
  namespace        = "knative-operator"
  create_namespace = true
  repository       = "https://knative.github.io/operator"
  chart            = "knative-operator"
  version          = var.versions.knative_operator
  wait             = true
}

# Strimzi: Kafka in KRaft mode with node pools (no ZooKeeper), watching the data namespace.
resource "helm_release" "strimzi" {
  name             = "strimzi-kafka-operator"
  namespace        = "strimzi"
  create_namespace = true
  repository       = "https://strimzi.io/charts/"
  chart            = "strimzi-kafka-operator"
  version          = var.versions.strimzi
  values = [yamlencode({
    watchNamespaces = [kubernetes_namespace.data.metadata[0].name]
  })]
  wait = true
}

# MariaDB operator (maintained, MySQL-compatible, declarative User/Grant/Database objects
# for least-privilege accounts). Its CRDs come in a separate chart.
resource "helm_release" "mariadb_operator_crds" {
  name             = "mariadb-operator-crds"
  namespace        = "mariadb-operator"
  create_namespace = true
  repository       = "https://helm.mariadb.com/mariadb-operator"
  chart            = "mariadb-operator-crds"
  version          = var.versions.mariadb_operator
  wait             = true
}

resource "helm_release" "mariadb_operator" {
  name       = "mariadb-operator"
  namespace  = "mariadb-operator"
  repository = "https://helm.mariadb.com/mariadb-operator"
  chart      = "mariadb-operator"
  version    = var.versions.mariadb_operator
  wait       = true
  depends_on = [helm_release.mariadb_operator_crds]
}

# Opstree's Redis operator: RedisReplication + RedisSentinel (automatic failover), with
# maintained upstream Redis images (no Bitnami images, which are no longer maintained).
resource "helm_release" "redis_operator" {
  name             = "redis-operator"
  namespace        = "redis-operator"
  create_namespace = true
  repository       = "https://ot-container-kit.github.io/helm-charts/"
  chart            = "redis-operator"
  version          = var.versions.redis_operator
  wait             = true
}

# MinIO operator: only when the object store is MinIO in this cluster (MinIO's community
# edition is in maintenance mode; any S3-compatible endpoint can replace it).
resource "helm_release" "minio_operator" {
  count            = var.install_minio_operator ? 1 : 0
  name             = "minio-operator"
  namespace        = "minio-operator"
  create_namespace = true
  repository       = "https://operator.min.io"
  chart            = "operator"
  version          = var.versions.minio_operator
  wait             = true
}

# KServe: CRDs chart, then the controller (Serverless mode on Knative Serving; needs
# cert-manager for its webhooks).
resource "helm_release" "kserve_crd" {
  name             = "kserve-crd"
  namespace        = "kserve"
  create_namespace = true
  repository       = "oci://ghcr.io/kserve/charts"
  chart            = "kserve-crd"
  version          = var.versions.kserve
  wait             = true
}

resource "helm_release" "kserve" {
  name       = "kserve"
  namespace  = "kserve"
  repository = "oci://ghcr.io/kserve/charts"
  chart      = "kserve"
  version    = var.versions.kserve
  values = [yamlencode({
    kserve = {
      controller = { deploymentMode = "Serverless" }
    }
  })]
  wait       = true
  depends_on = [helm_release.kserve_crd, helm_release.cert_manager, helm_release.knative_operator]
}
