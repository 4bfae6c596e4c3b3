# Stage 2 of an environment: the custom resources of the operators installed in stage 1
# (Knative Serving/Eventing with Kafka, Kafka, object store, MySQL, Redis), KServe's
# storage Secret and the platform's Secrets, wired together. The environment roots
# (environments/<env>/2-platform) only choose sizes and pass the secrets.

module "kafka" {
  source              = "../kafka"
  namespace           = var.data_namespace
  controller_replicas = var.size.kafka_controllers
  broker_replicas     = var.size.kafka_brokers
  replication_factor  = var.size.kafka_replication
  min_insync_replicas = max(1, var.size.kafka_replication - 1)
  broker_storage      = var.size.kafka_broker_storage
}

module "knative" {
  source                   = "../knative"
  kafka_bootstrap          = module.kafka.bootstrap
  broker_topic_replication = var.size.kafka_replication
}

module "object_store" {
  source            = "../object-store"
  namespace         = var.data_namespace
  external_endpoint = var.s3_external_endpoint
  admin_access_key  = var.secrets.s3_admin_access_key
  admin_secret_key  = var.secrets.s3_admin_secret_key
  minio_servers     = var.size.minio_servers
  minio_volume_size = var.size.minio_volume_size
}

module "mysql" {
  source           = "../mysql"
  namespace        = var.data_namespace
  replicas         = var.size.mysql_replicas
  storage_size     = var.size.mysql_storage
  max_connections  = var.size.mysql_max_connections
  root_password    = var.secrets.mysql_root_password
  app_password     = var.secrets.mysql_app_password
  migrate_password = var.secrets.mysql_migrate_password
  report_password  = var.secrets.mysql_report_password
}

module "redis" {
  source    = "../redis"
  namespace = var.data_namespace
  replicas  = var.size.redis_replicas
  sentinels = var.size.redis_sentinels
  password  = var.secrets.redis_password
}

module "platform_secrets" {
  source            = "../platform-secrets"
  namespace         = var.platform_namespace
  database_host     = module.mysql.host
  database_user     = module.mysql.app_user
  database_password = var.secrets.mysql_app_password
  migrate_user      = module.mysql.migrate_user
  migrate_password  = var.secrets.mysql_migrate_password
  redis_host        = module.redis.host
  redis_password    = var.secrets.redis_password
  s3_access_key     = var.secrets.s3_app_access_key
  s3_secret_key     = var.secrets.s3_app_secret_key
  jwt_key_set_json  = var.secrets.jwt_key_set_json
}

module "kserve" {
  source          = "../kserve"
  namespace       = module.platform_secrets.namespace
  s3_endpoint     = module.object_store.endpoint
  read_access_key = var.secrets.s3_models_access_key
  read_secret_key = var.secrets.s3_models_secret_key
}
