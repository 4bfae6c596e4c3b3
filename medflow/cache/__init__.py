"""Cache, distributed locks, rate limits and pub/sub: Redis in the cluster, in-process embedded."""
