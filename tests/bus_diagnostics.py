"""What a test says when an event-driven wait times out: the state of the platform's
consumers (alive, assigned, restarts, last poll, positions), so a failure in CI shows
whether the event was never consumed or consumed and retried."""

from __future__ import annotations

import json


def consumers_of(platform) -> str:
    states = getattr(platform.services.bus, "consumer_states", None)
    return json.dumps(states(), default=str) if states else "(in-process bus)"
