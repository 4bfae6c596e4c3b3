# GPU nodes: the label and taint every GPU node carries, and NVIDIA's device plugin that
# advertises `nvidia.com/gpu` on them. Node labels and taints belong to the node pool
# (cloud module or kubelet flags: `--node-labels`, `--register-with-taints`), so that
# nodes created by the autoscaler get them too; this module exports them in the forms
# those need, and installs the device plugin only where they are set.
#
# The taint keeps every other pod off the expensive nodes; the InferenceServices of
# k8s/base/models tolerate it and select the label (k8s/generate.py: GPU_NODE_LABEL).

locals {
  labels = { (var.label_key) = var.label_value }
  taint  = { key = "nvidia.com/gpu", value = "present", effect = "NoSchedule" }
}

resource "helm_release" "device_plugin" {
  count            = var.install_device_plugin ? 1 : 0
  name             = "nvidia-device-plugin"
  namespace        = "nvidia-device-plugin"
  create_namespace = true
  repository       = "https://nvidia.github.io/k8s-device-plugin"
  chart            = "nvidia-device-plugin"
  version          = var.device_plugin_version
  values = [yamlencode({
    nodeSelector = local.labels
    tolerations  = [{ key = local.taint.key, operator = "Exists", effect = local.taint.effect }]
  })]
  wait = true
}
