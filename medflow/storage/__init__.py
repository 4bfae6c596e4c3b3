"""Object store: any S3-compatible store through boto3 in the cluster, a local folder embedded."""
