"""Analysis workflow: tasks on exam items, model calls through KServe, doctor review."""
