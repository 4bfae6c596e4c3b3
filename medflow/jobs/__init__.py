"""Bulk jobs: submit, run in checkpointed batches, cancel, expire, export packages."""
