# Shared by every environment root (symlinked as providers.tf): provider requirements and
# configuration. Each root keeps its own state; configure the backend at init time, e.g.
#   terraform init -backend-config=bucket=… -backend-config=key=medflow/<env>/<stage>.tfstate
terraform {
  required_version = ">= 1.5.0"
  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = ">= 1.3.2, < 3.0.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 1.13.4, < 3.0.0"
    }
  }
  backend "s3" {}
}

variable "kubeconfig" {
  description = "Path of the kubeconfig of the environment's cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "Context of the environment's cluster in the kubeconfig."
  type        = string
}

provider "kubernetes" {
  config_path    = var.kubeconfig
  config_context = var.kube_context
}

provider "helm" {
  kubernetes {
    config_path    = var.kubeconfig
    config_context = var.kube_context
  }
}
