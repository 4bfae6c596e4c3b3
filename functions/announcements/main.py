"""announcements: administrators publish to their institution; doctors and patients read (HTTP).

Administrators publish, edit (optimistic version: 409 when stale) and withdraw
announcements of their own institution; every signed-in member lists and reads those
meant for their audience. Another institution's ids answer 404. Reads are served
cache-aside; every write is audited. Use cases: ``medflow.records.announcements``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from medflow.audit.trail import audit
from medflow.auth.principal import ADMIN, SIGNED_IN
from medflow.cache.aside import cache_aside
from medflow.pagination import MAX_PAGE_SIZE
from medflow.records import announcements as use_cases
from medflow.runtime.entry import entrypoint
from medflow.runtime.render import RenderMemo
from medflow.runtime.spec import Call, HttpFunction, RenderedJson, RequestModel, ResponseModel

spec = HttpFunction("announcements", "Announcements of an institution to its doctors and patients")
SOURCE = "/medflow/announcements"

Audience = Literal["all", "doctors", "patients"]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# TEXT holds 65,535 bytes: 10,000 characters fit even at 4 bytes each.
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class AnnouncementIn(RequestModel):
    title: Title
    body: Body
    audience: Audience = Field("all", description="Who reads it: everyone, doctors only, or patients only.")


class AnnouncementChange(RequestModel):
    title: Title
    body: Body
    audience: Audience
    version: int = Field(ge=1, description="The version you read; 409 if it changed meanwhile.")


class PageQuery(RequestModel):
    limit: int = Field(20, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: str | None = Field(None, max_length=512, description="Opaque cursor from the previous page.")


class AnnouncementOut(ResponseModel):
    id: str
    title: str
    body: str
    audience: Audience
    author_id: str
    published_at: datetime
    version: int

    @staticmethod
    def of(found: use_cases.Announcement) -> "AnnouncementOut":
        """Built without re-validation: the fields come from our own rows (the hot read path)."""
        return AnnouncementOut.model_construct(id=found.id, title=found.title, body=found.body, audience=found.audience,
                               author_id=found.author_id, published_at=found.published_at, version=found.version)


class AnnouncementPage(ResponseModel):
    items: list[AnnouncementOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


_render_page = RenderMemo(lambda page: AnnouncementPage.model_construct(
    items=[AnnouncementOut.of(a) for a in page.items], next_cursor=page.next_cursor))
_render_one = RenderMemo(AnnouncementOut.of)


async def _audit(call: Call, action: str, found: use_cases.Announcement) -> None:
    me = call.caller()
    await audit(call.services, source=SOURCE, action=action,
                resource_type="announcement", outcome="success", actor_id=me.user_id, actor_role=me.role,
                institution_id=me.institution_id, resource_id=found.id,
                details={"audience": found.audience, "version": found.version})


def _draft(body: AnnouncementIn | AnnouncementChange) -> use_cases.Draft:
    return use_cases.Draft(title=body.title, body=body.body, audience=body.audience)


@spec.operation("POST", "/announcements", access=ADMIN, body=AnnouncementIn, response=AnnouncementOut, status=201,
                summary="Publish an announcement")
async def publish(call: Call) -> AnnouncementOut:
    """Published at once to the chosen audience of your institution."""
    me = call.caller()
    found = await use_cases.publish(call.services.db, cache_aside(call.services), me.institution_id, me.user_id,
                                    _draft(call.body))
    await _audit(call, "announcement.published", found)
    return AnnouncementOut.of(found)


@spec.operation("GET", "/announcements", access=SIGNED_IN, query=PageQuery, response=AnnouncementPage,
                summary="List announcements")
async def list_announcements(call: Call) -> RenderedJson:
    """Those meant for you (administrators: all of the institution's), newest first, keyset pages."""
    q: PageQuery = call.query
    page = await use_cases.list_for(call.services.db, cache_aside(call.services), call.caller(),
                                    limit=q.limit, cursor=q.cursor)
    return _render_page(page)


@spec.operation("GET", "/announcements/{announcement_id}", access=SIGNED_IN, response=AnnouncementOut,
                summary="Read an announcement")
async def read_announcement(call: Call) -> RenderedJson:
    """One announcement meant for you; 404 for any other."""
    found = await use_cases.read_for(call.services.db, cache_aside(call.services), call.caller(),
                                     call.path["announcement_id"])
    return _render_one(found)


@spec.operation("PUT", "/announcements/{announcement_id}", access=ADMIN, body=AnnouncementChange,
                response=AnnouncementOut, errors=(409,), summary="Edit an announcement")
async def edit_announcement(call: Call) -> AnnouncementOut:
    """Replace title, body and audience; send the version you read (409 if it changed)."""
    body: AnnouncementChange = call.body
    found = await use_cases.update(call.services.db, cache_aside(call.services), call.caller().institution_id,
                                   call.path["announcement_id"], _draft(body), body.version)
    await _audit(call, "announcement.updated", found)
    return AnnouncementOut.of(found)


@spec.operation("DELETE", "/announcements/{announcement_id}", access=ADMIN, response=None, status=204,
                summary="Withdraw an announcement")
async def withdraw_announcement(call: Call) -> None:
    """Soft delete: it disappears from every list and read at once."""
    found = await use_cases.delete(call.services.db, cache_aside(call.services), call.caller().institution_id,
                                   call.path["announcement_id"])
    await _audit(call, "announcement.deleted", found)


announcements = entrypoint(spec)
