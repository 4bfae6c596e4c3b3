# prod, stage 1: operators and their CRDs. Apply this first; then ../2-platform.

module "operators" {
  source                 = "../../../modules/operators"
  data_namespace         = "medflow-data"
  install_cert_manager   = true
  install_minio_operator = true
}

# prod has a GPU node pool carrying these labels and taints.
module "gpu_nodes" {
  source                = "../../../modules/gpu-nodes"
  install_device_plugin = var.gpu_nodes
}

variable "gpu_nodes" {
  description = "Whether the cluster has GPU nodes (prod: yes)."
  type        = bool
  default     = true
}

output "operator_releases" {
  description = "Operator charts installed and their versions."
  value       = module.operators.releases
}

output "gpu_node_labels" {
  description = "Labels to put on the GPU node pool."
  value       = module.gpu_nodes.node_labels
}

output "gpu_node_taints" {
  description = "Taints to put on the GPU node pool."
  value       = module.gpu_nodes.node_taints
}
