"""Announcements: an institution's administrators publish, edit and withdraw them; its
doctors and patients read those meant for them.

Reads (a keyset page, newest first; one announcement) are served cache-aside with the
``announcements`` kind: TTL 300–900 s with jitter, unknown ids remembered for 30 s. All
reads of one institution share one cache scope, so each write (publish, edit, delete)
invalidates every page and id of that institution with one generation bump, after the
SQL commit. Every query names the caller's institution: another institution's id is "not
found", exactly like an id that never existed.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from medflow.auth.principal import Principal
from medflow.cache.aside import CacheAside, CacheKind, as_aside
from medflow.cache.ports import Cache
from medflow.db.engine import Database
from medflow.db.schema import announcements
from medflow.errors import bad_request, conflict, not_found
from medflow.ids import new_id, utcnow
from medflow.pagination import decode_time_cursor, encode_time_cursor

ANNOUNCEMENTS = CacheKind("announcements", ttl_min_s=300, ttl_max_s=900, negative_ttl_s=30)

AUDIENCES = ("all", "doctors", "patients")
VISIBLE_AUDIENCES: dict[str, tuple[str, ...]] = {
    "admin": AUDIENCES,
    "doctor": ("all", "doctors"),
    "patient": ("all", "patients"),
}
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


@dataclass(frozen=True)
class Announcement:
    id: str
    institution_id: str
    title: str
    body: str
    audience: str
    author_id: str
    published_at: datetime
    version: int

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "published_at": self.published_at.isoformat()}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "Announcement":
        return Announcement(**{**data, "published_at": datetime.fromisoformat(data["published_at"])})


@dataclass(frozen=True)
class Draft:
    """What an administrator writes: the text and who it is for."""

    title: str
    body: str
    audience: str = "all"


@dataclass(frozen=True)
class AnnouncementPage:
    items: tuple[Announcement, ...]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"items": [a.to_json() for a in self.items], "next_cursor": self.next_cursor}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "AnnouncementPage":
        return AnnouncementPage(tuple(Announcement.from_json(a) for a in data["items"]), data["next_cursor"])


def _visible_to(viewer: Principal) -> tuple[str, ...]:
    return VISIBLE_AUDIENCES.get(viewer.role, ())


# --- writes: each bumps the institution's generation after its commit -----------------------

async def publish(db: Database, cache: Cache | CacheAside, institution_id: str, author_id: str, draft: Draft,
                  *, now: datetime | None = None) -> Announcement:
    """Publish now (or at ``now``) to the institution's audience."""
    row = {"id": new_id(), "institution_id": institution_id, "title": draft.title, "body": draft.body,
           "audience": draft.audience, "author_id": author_id, "published_at": now or utcnow(), "version": 1}
    async with db.transaction() as conn:
        await conn.execute(announcements.insert().values(**row))
    await as_aside(cache).invalidate(ANNOUNCEMENTS, institution_id)
    return Announcement(**row)


async def update(db: Database, cache: Cache | CacheAside, institution_id: str, announcement_id: str, draft: Draft,
                 expected_version: int) -> Announcement:
    """Replace title, body and audience; 409 when ``expected_version`` is not the current one,
    404 when it does not exist here (or was deleted)."""
    query = (announcements.update()
             .where(announcements.c.id == announcement_id, announcements.c.institution_id == institution_id,
                    announcements.c.deleted_at.is_(None), announcements.c.version == expected_version)
             .values(title=draft.title, body=draft.body, audience=draft.audience, version=announcements.c.version + 1))
    async with db.transaction() as conn:
        changed = (await conn.execute(query)).rowcount
    if changed == 0:
        current = await _require_live(db, institution_id, announcement_id)
        raise conflict(f"The announcement changed meanwhile (now version {current.version}); reload and retry.",
                       code="version-conflict")
    await as_aside(cache).invalidate(ANNOUNCEMENTS, institution_id)
    return await _require_live(db, institution_id, announcement_id)


async def delete(db: Database, cache: Cache | CacheAside, institution_id: str, announcement_id: str) -> Announcement:
    """Withdraw (soft delete): it disappears from every list and read; the row stays.
    Returns what was withdrawn; 404 when it does not exist here or was already withdrawn."""
    current = await _require_live(db, institution_id, announcement_id)
    query = (announcements.update()
             .where(announcements.c.id == announcement_id, announcements.c.institution_id == institution_id,
                    announcements.c.deleted_at.is_(None))
             .values(deleted_at=utcnow(), version=announcements.c.version + 1))
    async with db.transaction() as conn:
        changed = (await conn.execute(query)).rowcount
    if changed == 0:  # withdrawn meanwhile by someone else
        raise not_found("announcement")
    await as_aside(cache).invalidate(ANNOUNCEMENTS, institution_id)
    return current


# --- reads: cache-aside ------------------------------------------------------------------------

async def list_for(db: Database, cache: Cache | CacheAside, viewer: Principal, *, limit: int,
                   cursor: str | None) -> AnnouncementPage:
    """The announcements of the viewer's institution meant for them, newest first, one keyset
    page (administrators see every audience)."""
    after = _decode_cursor(cursor)  # a malformed cursor is a 400 before anything is cached
    audiences = _visible_to(viewer)
    item = f"list:{'+'.join(audiences)}:{limit}:{_encode_cursor(*after) if after else '-'}"

    async def load() -> dict[str, Any]:
        return (await _load_page(db, viewer.institution_id, audiences, limit, after)).to_json()

    return await as_aside(cache).get(ANNOUNCEMENTS, viewer.institution_id, item, load, AnnouncementPage.from_json)


async def read_for(db: Database, cache: Cache | CacheAside, viewer: Principal, announcement_id: str) -> Announcement:
    """One announcement of the viewer's institution meant for them; 404 otherwise."""
    if not _ULID.match(announcement_id):
        raise not_found("announcement")  # never a cache key for a malformed id

    async def load() -> dict[str, Any] | None:
        found = await _load_one(db, viewer.institution_id, announcement_id)
        return found.to_json() if found else None

    found = await as_aside(cache).get(ANNOUNCEMENTS, viewer.institution_id, f"one:{announcement_id}", load,
                                      Announcement.from_json)
    if found is None or found.audience not in _visible_to(viewer):
        raise not_found("announcement")
    return found


# --- SQL ------------------------------------------------------------------------------------

_COLUMNS = (announcements.c.id, announcements.c.institution_id, announcements.c.title, announcements.c.body,
            announcements.c.audience, announcements.c.author_id, announcements.c.published_at,
            announcements.c.version)


async def _load_one(db: Database, institution_id: str, announcement_id: str) -> Announcement | None:
    query = sa.select(*_COLUMNS).where(announcements.c.id == announcement_id,
                                       announcements.c.institution_id == institution_id,
                                       announcements.c.deleted_at.is_(None))
    async with db.connect() as conn:
        row = (await conn.execute(query)).first()
    return Announcement(*row) if row else None


async def _require_live(db: Database, institution_id: str, announcement_id: str) -> Announcement:
    found = await _load_one(db, institution_id, announcement_id) if _ULID.match(announcement_id) else None
    if found is None:
        raise not_found("announcement")
    return found


async def _load_page(db: Database, institution_id: str, audiences: tuple[str, ...], limit: int,
                     after: tuple[datetime, str] | None) -> AnnouncementPage:
    """Newest first on the (institution_id, published_at, id) index."""
    published, ident = announcements.c.published_at, announcements.c.id
    query = sa.select(*_COLUMNS).where(announcements.c.institution_id == institution_id,
                                       announcements.c.deleted_at.is_(None),
                                       announcements.c.audience.in_(audiences))
    if after:
        at, last_id = after
        # The leading bound keeps a range scan on the index (an OR alone does not, on MariaDB).
        query = query.where(published <= at, sa.or_(published < at, ident < last_id))
    rows = await _fetch(db, query.order_by(published.desc(), ident.desc()).limit(limit + 1))
    items = tuple(Announcement(*row) for row in rows[:limit])
    more = len(rows) > limit
    return AnnouncementPage(items, _encode_cursor(items[-1].published_at, items[-1].id) if more else None)


async def _fetch(db: Database, query: sa.Select) -> list[Any]:
    async with db.connect() as conn:
        return list((await conn.execute(query)).all())


_encode_cursor = encode_time_cursor
_decode_cursor = decode_time_cursor
