# Stage 2: what KServe needs to serve MedFlow's models from the object store: the Secret
# that KServe's storage initializer reads through the predictors' ServiceAccount
# (medflow-models, k8s/base/models/runtime.yaml). Its key should be a read-only
# credential on the models bucket. The InferenceServices themselves are in k8s/.

resource "kubernetes_secret" "models_s3" {
  metadata {
    name      = "medflow-models-s3"
    namespace = var.namespace
    annotations = {
      "serving.kserve.io/s3-endpoint"          = replace(replace(var.s3_endpoint, "https://", ""), "http://", "")
      "serving.kserve.io/s3-usehttps"          = startswith(var.s3_endpoint, "https://") ? "1" : "0"
      "serving.kserve.io/s3-region"            = var.s3_region
      "serving.kserve.io/s3-useanoncredential" = "false"
    }
  }
  data = {
    AWS_ACCESS_KEY_ID     = var.read_access_key
    AWS_SECRET_ACCESS_KEY = var.read_secret_key
  }
}
