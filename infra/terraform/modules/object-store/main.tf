# Stage 2: the object store. Either a MinIO Tenant in this cluster (operator from stage 1)
# or, with var.external_endpoint set, any S3-compatible service (AWS S3, Ceph RGW,
# SeaweedFS, Garage, a hosted MinIO…): MedFlow only speaks the S3 API (boto3), and MinIO's
# community edition is in maintenance mode. Either way a Job creates the buckets
# <prefix>-{dicom,renders,exports,models,knowledge,archive,incoming} and their lifecycle rules
# with the AWS CLI against the endpoint, so nothing here depends on MinIO's own API.

locals {
  use_minio = var.external_endpoint == ""
  endpoint  = local.use_minio ? "http://minio.${var.namespace}.svc" : var.external_endpoint
  # medflow.storage.ports.BUCKETS ("incoming": where hospital systems and the C-STORE
  # receiver drop objects for imaging_arrivals).
  buckets = [for b in ["dicom", "renders", "exports", "models", "knowledge", "archive", "incoming"] : "${var.bucket_prefix}-${b}"]

  # Lifecycle: exports are short-lived downloads; the archive bucket moves objects to the
  # cold tier (a MinIO remote tier or the provider's archive storage class) and keeps
  # them for the retention period; renders are a cache.
  lifecycle = {
    "${var.bucket_prefix}-exports" = { Rules = [{ ID = "expire-exports", Status = "Enabled", Filter = { Prefix = "" }, Expiration = { Days = var.export_expiry_days } }] }
    "${var.bucket_prefix}-renders" = { Rules = [{ ID = "expire-renders", Status = "Enabled", Filter = { Prefix = "" }, Expiration = { Days = var.render_expiry_days } }] }
    "${var.bucket_prefix}-archive" = { Rules = [{
      ID          = "archive-tier"
      Status      = "Enabled"
      Filter      = { Prefix = "" }
      Transitions = [{ Days = var.archive_transition_days, StorageClass = var.archive_storage_class }]
      Expiration  = { Days = var.archive_retention_days }
    }] }
  }

  tenant = {
    apiVersion = "minio.min.io/v2"
    kind       = "Tenant"
    metadata = {
      name      = "minio"
      namespace = var.namespace
      labels    = { "app.kubernetes.io/part-of" = "medflow", "medflow.org/state-store" = "true" }
    }
    spec = {
      configuration = { name = "minio-root" }
      pools = [{
        name             = "pool-0"
        servers          = var.minio_servers
        volumesPerServer = var.minio_volumes_per_server
        volumeClaimTemplate = {
          spec = {
            accessModes      = ["ReadWriteOnce"]
            storageClassName = var.storage_class
            resources        = { requests = { storage = var.minio_volume_size } }
          }
        }
        containerSecurityContext = { runAsNonRoot = true, runAsUser = 1000, allowPrivilegeEscalation = false }
      }]
      requestAutoCert = false
    }
  }

  setup_job = {
    apiVersion = "batch/v1"
    kind       = "Job"
    metadata   = { name = "medflow-buckets", namespace = var.namespace, labels = { "app.kubernetes.io/part-of" = "medflow" } }
    spec = {
      backoffLimit = 10
      template = {
        metadata = { labels = { "app.kubernetes.io/name" = "medflow-buckets" } }
        spec = {
          restartPolicy   = "OnFailure"
          securityContext = { runAsNonRoot = true, runAsUser = 10001, seccompProfile = { type = "RuntimeDefault" } }
          containers = [{
            name    = "buckets"
            image   = var.aws_cli_image
            command = ["/bin/sh", "-ec"]
            args = [join("\n", concat(
              [for b in local.buckets : "aws --endpoint-url \"$ENDPOINT\" s3api head-bucket --bucket ${b} 2>/dev/null || aws --endpoint-url \"$ENDPOINT\" s3api create-bucket --bucket ${b}"],
              [for b, rules in local.lifecycle : "aws --endpoint-url \"$ENDPOINT\" s3api put-bucket-lifecycle-configuration --bucket ${b} --lifecycle-configuration '${jsonencode(rules)}'"],
            ))]
            env = [
              { name = "ENDPOINT", value = local.endpoint },
              { name = "AWS_DEFAULT_REGION", value = var.region },
              { name = "HOME", value = "/tmp" },
              { name = "AWS_ACCESS_KEY_ID", valueFrom = { secretKeyRef = { name = "medflow-object-store-admin", key = "access-key" } } },
              { name = "AWS_SECRET_ACCESS_KEY", valueFrom = { secretKeyRef = { name = "medflow-object-store-admin", key = "secret-key" } } },
            ]
            securityContext = { allowPrivilegeEscalation = false, capabilities = { drop = ["ALL"] } }
          }]
        }
      }
    }
  }
}

# Credentials: the tenant's root (MinIO only) and the admin key the bucket Job uses.
resource "kubernetes_secret" "minio_root" {
  count = local.use_minio ? 1 : 0
  metadata {
    name      = "minio-root"
    namespace = var.namespace
  }
  data = {
    "config.env" = "export MINIO_ROOT_USER=\"${var.admin_access_key}\"\nexport MINIO_ROOT_PASSWORD=\"${var.admin_secret_key}\"\n"
  }
}

resource "kubernetes_secret" "admin" {
  metadata {
    name      = "medflow-object-store-admin"
    namespace = var.namespace
  }
  data = {
    "access-key" = var.admin_access_key
    "secret-key" = var.admin_secret_key
  }
}

resource "helm_release" "object_store" {
  name      = "medflow-object-store"
  namespace = var.namespace
  chart     = "${path.module}/../../charts/manifests"
  values = [yamlencode({
    manifests = concat(local.use_minio ? [local.tenant] : [], [local.setup_job])
  })]
  wait       = true
  timeout    = 900
  depends_on = [kubernetes_secret.admin, kubernetes_secret.minio_root]
}
