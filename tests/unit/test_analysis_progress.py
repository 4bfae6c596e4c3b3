"""Following a task's progress: the current state at once, every change pushed through
pub/sub, a keep-alive when nothing changes, the end when the task finishes."""

from __future__ import annotations

import asyncio

from medflow.analysis.progress import ProgressHub, announce, follow
from medflow.cache.memory import MemoryPubSub


async def test_follow_yields_changes_keepalives_and_ends_when_finished():
    pubsub = MemoryPubSub()
    hub = ProgressHub(pubsub)
    task = {"state": "queued", "attempts": 0, "updated_at": 1}

    async def load():
        return dict(task)

    seen: list = []

    async def watch():
        async for update in follow(hub, "T1", load, heartbeat_s=0.05, max_s=5):
            seen.append(update and update["state"])

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.12)                                  # quiet: keep-alives
    task.update(state="running", attempts=1, updated_at=2)
    await announce(pubsub, "T1", "running")
    await asyncio.sleep(0.02)
    task.update(state="succeeded", updated_at=3)
    await announce(pubsub, "T1", "succeeded")
    await asyncio.wait_for(watcher, 2)
    assert seen[0] == "queued" and seen[-1] == "succeeded" and "running" in seen and None in seen
    assert seen.index("running") < seen.index("succeeded")


async def test_a_lost_announcement_is_caught_by_the_heartbeat():
    pubsub = MemoryPubSub()
    task = {"state": "running", "attempts": 1, "updated_at": 1}

    async def load():
        return dict(task)

    async def finish_silently():
        await asyncio.sleep(0.05)
        task.update(state="failed", updated_at=2)             # no announcement

    asyncio.create_task(finish_silently())
    states = [u["state"] async for u in follow(ProgressHub(pubsub), "T2", load, heartbeat_s=0.05, max_s=5) if u]
    assert states == ["running", "failed"]


async def test_many_followers_share_one_subscription():
    pubsub = MemoryPubSub()
    hub = ProgressHub(pubsub)
    tasks = {f"T{i}": {"state": "running", "attempts": 1, "updated_at": 1} for i in range(20)}

    async def watch(task_id):
        async def load():
            return dict(tasks[task_id])
        return [u["state"] async for u in follow(hub, task_id, load, heartbeat_s=5, max_s=10) if u]

    watchers = [asyncio.create_task(watch(t)) for t in tasks]
    await asyncio.sleep(0.05)
    assert len(pubsub._subscribers["analysis:progress"]) == 1
    for task_id, task in tasks.items():
        task.update(state="succeeded", updated_at=2)
        await announce(pubsub, task_id, "succeeded")
    results = await asyncio.wait_for(asyncio.gather(*watchers), 2)    # woken by the push, not the 5 s heartbeat
    assert results == [["running", "succeeded"]] * 20
    await hub.close()
