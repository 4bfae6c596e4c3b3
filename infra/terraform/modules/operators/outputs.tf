output "releases" {
  description = "Name and version of every operator chart installed (for the apply log and stage 2's inputs)."
  value = merge(
    { for r in [helm_release.knative_operator, helm_release.strimzi, helm_release.mariadb_operator, helm_release.redis_operator, helm_release.kserve] : r.name => r.version },
    { for r in helm_release.minio_operator : r.name => r.version },
    { for r in helm_release.cert_manager : r.name => r.version },
  )
}
