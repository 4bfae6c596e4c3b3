"""Event bus: CloudEvents over Kafka in the cluster, an in-process bus embedded."""
