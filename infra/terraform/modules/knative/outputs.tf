output "broker_config" {
  description = "Namespace/name of the ConfigMap the MedFlow Broker (k8s/base/eventing/broker.yaml) references."
  value       = "knative-eventing/kafka-broker-config"
}
