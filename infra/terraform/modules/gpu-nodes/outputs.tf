output "node_labels" {
  description = "Labels to set on the GPU node pool."
  value       = local.labels
}

output "node_taints" {
  description = "Taints to set on the GPU node pool (key, value, effect)."
  value       = [local.taint]
}

output "kubelet_flags" {
  description = "The same as kubelet flags, for self-managed nodes."
  value       = "--node-labels=${var.label_key}=${var.label_value} --register-with-taints=${local.taint.key}=${local.taint.value}:${local.taint.effect}"
}
