variable "label_key" {
  description = "Label of GPU nodes (the InferenceServices' nodeSelector)."
  type        = string
  default     = "medflow.org/accelerator"
}

variable "label_value" {
  description = "Value of label_key on GPU nodes."
  type        = string
  default     = "nvidia-gpu"
}

variable "install_device_plugin" {
  description = "Install NVIDIA's device plugin (false when the GPU Operator or the cloud already provides it, or on CPU-only clusters)."
  type        = bool
  default     = true
}

variable "device_plugin_version" {
  description = "Chart version of nvidia-device-plugin."
  type        = string
  default     = "0.18.0"
}
