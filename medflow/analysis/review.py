"""Doctor review: accept findings into the record (some or all), edit them first, or reject.

What enters the record is written as annotations of the exam item, each naming the task
and finding it came from (labels for probabilities, measurements and syndromes; regions
with a rectangle or a contour), and, for the report generator, a report item with the
accepted text. The model's output on the task is never changed: an edit is stored on the
review and in what it wrote. Each decision is a row of its own and an audit entry.
Re-running is ``tasks.rerun``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import ValidationError

from medflow.analysis.results import Finding
from medflow.analysis.tasks import get, require_doctor
from medflow.auth.principal import Principal
from medflow.db.engine import Database
from medflow.db.schema import analysis_reviews, analysis_tasks, annotations, case_items, cases
from medflow.errors import FieldError, Problem, conflict, field_errors, validation_failed
from medflow.ids import new_id, utcnow
from medflow.records.items import validated_content

OPEN_FOR_REVIEW = ("pending", "partially_accepted")
EDITABLE = ("label", "text", "value", "box", "contour")


@dataclass(frozen=True)
class Decision:
    decision: Literal["accept", "edit", "reject"]
    finding_keys: list[str] | None = None            # None: the whole result
    edits: dict[str, dict[str, Any]] = field(default_factory=dict)   # finding key -> new values
    report: str | None = None                         # the report text as the doctor edited it
    reason: str | None = None


def _accepted_keys(reviews: list[dict[str, Any]]) -> set[str]:
    return {k for r in reviews if r["decision"] in ("accept", "edit") for k in (r["finding_keys"] or [])}


async def _reviews(conn, task_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(sa.select(analysis_reviews).where(analysis_reviews.c.task_id == task_id)
                               .order_by(analysis_reviews.c.created_at, analysis_reviews.c.id))).mappings()
    return [dict(r) for r in rows]


def _edited(findings: dict[str, dict[str, Any]], edits: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The findings with the doctor's edits applied, each checked against the finding schema."""
    errors: list[FieldError] = []
    out: dict[str, dict[str, Any]] = {}
    for key, change in edits.items():
        if key not in findings:
            errors.append(FieldError(f"body.edits.{key}", "No such finding in this result.", "unknown_finding"))
            continue
        unknown = sorted(set(change) - set(EDITABLE))
        if unknown:
            errors.append(FieldError(f"body.edits.{key}", f"Only {', '.join(EDITABLE)} can be edited.", "not_editable"))
            continue
        try:
            out[key] = Finding.model_validate({**findings[key], **change}).model_dump(exclude_none=True)
        except ValidationError as exc:
            errors += field_errors(exc, f"body.edits.{key}")
    if errors:
        raise validation_failed(errors, "The edits do not fit the findings.")
    return out


def _annotation(task: dict[str, Any], finding: dict[str, Any], reviewer: str, now) -> dict[str, Any]:
    label, shape, coordinates, kind = finding["label"], None, None, "label"
    if finding.get("box"):
        x0, y0, x1, y1 = finding["box"]
        kind, shape, coordinates = "region", "rect", [[x0, y0], [x1, y1]]
    elif finding.get("contour"):
        kind, shape, coordinates = "region", "polygon", finding["contour"]
    elif finding.get("value") is not None:
        label = f"{finding['label']} {finding['value']:g}{(' ' + finding['unit']) if finding.get('unit') else ''}"
    elif finding.get("probability") is not None:
        label = f"{finding['label']} (p={finding['probability']:.2f})"
    return {"id": new_id(), "institution_id": task["institution_id"], "case_id": task["case_id"],
            "item_id": task["item_id"] if kind == "region" else None, "kind": kind, "label": label[:100],
            "shape": shape, "coordinates": coordinates, "status": "reviewed", "author_id": reviewer, "version": 1,
            "created_at": now, "updated_at": now, "source_task_id": task["id"], "finding_key": finding["key"]}


def _report_text(task: dict[str, Any], accepted: list[dict[str, Any]], whole: bool, edited_report: str | None) -> str | None:
    if task["model"] != "chest_xray_report":
        return None
    if edited_report:
        return edited_report
    if whole:
        return task["result"].get("report")
    return " ".join(f["text"] for f in accepted if f.get("text")) or None


def _chosen(task: dict[str, Any], decision: Decision, already: set[str]) -> list[str]:
    """The findings this decision puts into the record: accept without keys = every one not yet
    accepted; an edit = the keys named and the findings edited."""
    keys = [f["key"] for f in task["result"]["findings"]]
    if decision.decision == "reject":
        return []
    if decision.decision == "accept" and decision.finding_keys is None:
        return [k for k in keys if k not in already]
    named = list(dict.fromkeys((decision.finding_keys or []) + list(decision.edits)))
    unknown = [k for k in named if k not in keys]
    if unknown:
        raise validation_failed([FieldError("body.finding_keys", f"No such finding: {', '.join(unknown)}.", "unknown_finding")])
    repeated = [k for k in named if k in already]
    if repeated:
        raise conflict(f"Already accepted: {', '.join(repeated)}.", "finding-already-accepted")
    return named


async def review(db: Database, who: Principal, task_id: str, decision: Decision) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the task after, the review row). 403 for anyone but a doctor, 404 outside the
    institution, 409 for a task not succeeded or already decided, 422 for unknown findings or bad edits."""
    require_doctor(who)
    task = await get(db, who.institution_id, task_id)
    if task["state"] != "succeeded":
        raise conflict("Only a finished, successful analysis can be reviewed.", "analysis-not-reviewable")
    if task["review_state"] not in OPEN_FOR_REVIEW:
        raise conflict(f"This analysis was already decided ({task['review_state']}).", "analysis-already-reviewed")
    if decision.decision == "edit" and not (decision.edits or decision.report):
        raise Problem(422, "edits-required", "An edit decision carries the edited findings or report.")
    now = utcnow()
    async with db.transaction() as conn:
        already = _accepted_keys(await _reviews(conn, task_id))
        findings = {f["key"]: f for f in task["result"]["findings"]}
        keys = _chosen(task, decision, already)
        edited = _edited(findings, decision.edits) if decision.edits else {}
        accepted = [edited.get(k, findings[k]) for k in keys]
        written: dict[str, Any] = {"annotations": []}
        rows = [_annotation(task, f, who.user_id, now) for f in accepted]
        if rows:
            await conn.execute(annotations.insert(), rows)
            written["annotations"] = [r["id"] for r in rows]
            await conn.execute(cases.update().where(cases.c.id == task["case_id"], cases.c.annotation_status == "none")
                               .values(annotation_status="in_progress"))
        whole = decision.decision == "accept" and decision.finding_keys is None
        report = _report_text(task, accepted, whole, decision.report) if decision.decision != "reject" else None
        if report:
            item = {"id": new_id(), "case_id": task["case_id"], "institution_id": task["institution_id"], "kind": "report",
                    "title": f"Reviewed AI report ({task['model']} v{task['model_version']})"[:200],
                    "content": validated_content("report", {"text": report}), "version": 1, "created_by": who.user_id,
                    "created_at": now, "updated_at": now}
            await conn.execute(case_items.insert().values(**item))
            written["report_item"] = item["id"]
        all_decided = decision.decision == "reject" or already.union(keys) >= set(findings)
        new_state = "rejected" if decision.decision == "reject" else ("accepted" if all_decided else "partially_accepted")
        changed = await conn.execute(analysis_tasks.update().where(
            analysis_tasks.c.id == task_id, analysis_tasks.c.review_state == task["review_state"],
            analysis_tasks.c.updated_at == task["updated_at"]).values(review_state=new_state, updated_at=now))
        if changed.rowcount != 1:
            raise conflict("The analysis was reviewed meanwhile; load it again.", "analysis-changed")
        row = {"id": new_id(), "institution_id": who.institution_id, "task_id": task_id, "decision": decision.decision,
               "finding_keys": keys, "edits": {"findings": edited, **({"report": decision.report} if decision.report else {})}
               if (edited or decision.report) else None, "reason": decision.reason, "written": written,
               "reviewer_id": who.user_id, "created_at": now}
        await conn.execute(analysis_reviews.insert().values(**row))
    return {**task, "review_state": new_state, "updated_at": now}, row


async def reviews_of(db: Database, institution_id: str, task_id: str) -> list[dict[str, Any]]:
    await get(db, institution_id, task_id)
    async with db.connect() as conn:
        return await _reviews(conn, task_id)
