"""Alert thresholds on consumer lag and dead-letter counts, set by administrators, and the
alerts they raise now (a rule is crossed when the measured value exceeds its threshold)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from medflow.bus.admin import dead_letter_counts, lag_report
from medflow.db.schema import bus_alert_rules
from medflow.ids import new_id, utcnow

METRICS = ("lag", "dead_letters")


async def set_rule(db, institution_id: str, metric: str, group: str, threshold: int, actor_id: str) -> dict[str, Any]:
    """Create or replace the rule for (metric, group)."""
    now = utcnow()
    async with db.transaction() as conn:
        changed = (await conn.execute(bus_alert_rules.update().where(
            bus_alert_rules.c.institution_id == institution_id, bus_alert_rules.c.metric == metric,
            bus_alert_rules.c.consumer_group == group).values(threshold=threshold, updated_by=actor_id, updated_at=now))).rowcount
        if not changed:
            await conn.execute(bus_alert_rules.insert().values(
                id=new_id(), institution_id=institution_id, metric=metric, consumer_group=group, threshold=threshold,
                updated_by=actor_id, updated_at=now))
    return {"metric": metric, "consumer_group": group, "threshold": threshold}


async def rules(db, institution_id: str) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(bus_alert_rules).where(bus_alert_rules.c.institution_id == institution_id)
                                   .order_by(bus_alert_rules.c.metric, bus_alert_rules.c.consumer_group))).mappings().all()
    return [dict(r) for r in rows]


async def evaluate(db, bus, catalogue, institution_id: str) -> list[dict[str, Any]]:
    """Every rule with the value measured now and whether it is crossed."""
    found = await rules(db, institution_id)
    if not found:
        return []
    lag_by_group: dict[str, int] = {}
    for row in await lag_report(bus, catalogue):
        lag_by_group[row.group] = lag_by_group.get(row.group, 0) + row.lag
    dead = await dead_letter_counts(bus, catalogue)
    out = []
    for rule in found:
        group = catalogue.namespace + rule["consumer_group"]
        value = lag_by_group.get(group, 0) if rule["metric"] == "lag" else dead.get(group, 0)
        out.append({"metric": rule["metric"], "consumer_group": rule["consumer_group"], "threshold": rule["threshold"],
                    "value": value, "crossed": value > rule["threshold"]})
    return out
