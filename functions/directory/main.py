"""directory: the institution and department dictionary and the doctor directory (HTTP).

Public reads of the dictionary: patients pick their institution when they register, so it
is readable before sign-in. The doctor directory is for signed-in members of the same
institution. Use cases: ``medflow.accounts.directory``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from medflow.accounts import directory as use_cases
from medflow.accounts.schemas import EntityId
from medflow.auth.principal import PUBLIC, SIGNED_IN
from medflow.cache.aside import cache_aside
from medflow.errors import not_found
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.runtime.entry import entrypoint
from medflow.runtime.render import RenderMemo
from medflow.runtime.spec import Call, HttpFunction, RenderedJson, RequestModel, ResponseModel

spec = HttpFunction("directory", "Institutions, departments and doctors (directory reads)")

_ID = r"^[0-9A-HJKMNP-TV-Z]{26}$"


class PageQuery(RequestModel):
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: str | None = Field(None, max_length=512, description="Opaque cursor from the previous page.")


class InstitutionOut(ResponseModel):
    id: str
    code: str
    name: str
    kind: str
    region: str | None


class InstitutionPage(ResponseModel):
    items: list[InstitutionOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class DepartmentOut(ResponseModel):
    id: str
    institution_id: str
    code: str
    name: str


class DepartmentList(ResponseModel):
    items: list[DepartmentOut]


class DoctorQuery(RequestModel):
    department_id: EntityId | None = Field(None, description="Only the doctors of this department.")
    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Page size.")
    cursor: str | None = Field(None, max_length=2048, description="Opaque cursor from the previous page.")


class DoctorOut(ResponseModel):
    id: str
    display_name: str
    department_id: str | None
    profile: dict[str, Any] | None


class DoctorPage(ResponseModel):
    items: list[DoctorOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


# cached reads answer the same objects again: each is rendered once (medflow/runtime/render.py)
_render_departments = RenderMemo(lambda found: DepartmentList(items=[DepartmentOut(**vars(d)) for d in found]))
_render_doctors = RenderMemo(lambda page: DoctorPage(items=[DoctorOut(**vars(d)) for d in page.items],
                                                     next_cursor=page.next_cursor))


@spec.operation("GET", "/institutions", access=PUBLIC, query=PageQuery, response=InstitutionPage,
               summary="List institutions")
async def list_institutions(call: Call) -> InstitutionPage:
    """Active institutions by name, keyset-paginated."""
    page = await use_cases.list_institutions(call.services.db, call.query.limit, call.query.cursor)
    return InstitutionPage(items=[InstitutionOut(**vars(i)) for i in page.items], next_cursor=page.next_cursor)


@spec.operation("GET", "/institutions/{institution_id}", access=PUBLIC, response=InstitutionOut,
               summary="Read one institution")
async def get_institution(call: Call) -> InstitutionOut:
    """One active institution."""
    found = await use_cases.get_institution(call.services.db, call.path["institution_id"])
    if found is None:
        raise not_found("institution")
    return InstitutionOut(**vars(found))


@spec.operation("GET", "/institutions/{institution_id}/departments", access=PUBLIC, response=DepartmentList,
               summary="List an institution's departments")
async def list_departments(call: Call) -> RenderedJson:
    """Active departments of one institution, by name (served from cache when warm)."""
    found = await use_cases.list_departments(call.services.db, cache_aside(call.services), call.path["institution_id"])
    if found is None:
        raise not_found("institution")
    return _render_departments(found)


@spec.operation("GET", "/institutions/{institution_id}/doctors", access=SIGNED_IN, query=DoctorQuery,
                response=DoctorPage, summary="List an institution's doctors")
async def list_doctors(call: Call) -> RenderedJson:
    """Active doctors of your own institution by name, with their public profile,
    keyset-paginated and served from cache when warm; another institution answers 404."""
    institution_id = call.path["institution_id"]
    if institution_id != call.caller().institution_id:
        raise not_found("institution")
    q: DoctorQuery = call.query
    page = await use_cases.list_doctors(call.services.db, cache_aside(call.services), institution_id,
                                        department_id=q.department_id, limit=q.limit, cursor=q.cursor)
    return _render_doctors(page)


directory = entrypoint(spec)
