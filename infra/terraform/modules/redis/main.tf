# Stage 2: Redis replicated with automatic failover, with Opstree's Redis operator (stage
# 1): a RedisReplication (one primary, replicas) watched by a RedisSentinel quorum that
# promotes a replica when the primary fails. The operator labels the current primary so
# that its `<name>-master` Service follows it, and MEDFLOW_REDIS_URL does not change on
# failover (check the Service names of the operator release you install: `kubectl get
# svc`). Upstream Redis images (quay.io/opstree), not Bitnami's unmaintained ones.

locals {
  labels = { "app.kubernetes.io/part-of" = "medflow", "medflow.org/state-store" = "true" }
  common = {
    kubernetesConfig = {
      image           = var.redis_image
      imagePullPolicy = "IfNotPresent"
      redisSecret     = { name = "medflow-redis", key = "password" }
      resources       = var.resources
    }
    securityContext = { runAsUser = 1000, fsGroup = 1000 }
  }
  replication = {
    apiVersion = "redis.redis.opstreelabs.in/v1beta2"
    kind       = "RedisReplication"
    metadata   = { name = "redis", namespace = var.namespace, labels = local.labels }
    spec = merge(local.common, {
      clusterSize = var.replicas
      storage = {
        volumeClaimTemplate = {
          spec = {
            accessModes      = ["ReadWriteOnce"]
            storageClassName = var.storage_class
            resources        = { requests = { storage = var.storage_size } }
          }
        }
      }
    })
  }
  sentinel = {
    apiVersion = "redis.redis.opstreelabs.in/v1beta2"
    kind       = "RedisSentinel"
    metadata   = { name = "redis-sentinel", namespace = var.namespace, labels = local.labels }
    spec = merge(local.common, {
      clusterSize      = var.sentinels
      kubernetesConfig = merge(local.common.kubernetesConfig, { image = var.sentinel_image })
      redisSentinelConfig = {
        redisReplicationName  = "redis"
        masterGroupName       = "medflow"
        quorum                = tostring(floor(var.sentinels / 2) + 1)
        downAfterMilliseconds = "5000"
        failoverTimeout       = "30000"
      }
    })
  }
}

resource "kubernetes_secret" "redis" {
  metadata {
    name      = "medflow-redis"
    namespace = var.namespace
  }
  data = { password = var.password }
}

resource "helm_release" "redis" {
  name       = "medflow-redis"
  namespace  = var.namespace
  chart      = "${path.module}/../../charts/manifests"
  values     = [yamlencode({ manifests = [local.replication, local.sentinel] })]
  wait       = true
  depends_on = [kubernetes_secret.redis]
}
