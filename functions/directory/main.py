"""directory: the institution and department dictionary (HTTP).

Public reads: patients pick their institution when they register, so the dictionary is
readable before sign-in. Use cases: ``medflow.accounts.directory``.
"""

from __future__ import annotations

from pydantic import Field

from medflow.accounts import directory as use_cases
from medflow.auth.principal import PUBLIC
from medflow.errors import not_found
from medflow.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from medflow.runtime.entry import entrypoint
from medflow.runtime.spec import Call, HttpFunction, RequestModel, ResponseModel

spec = HttpFunction("directory", "Institutions and departments (dictionary reads)")

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
async def list_departments(call: Call) -> DepartmentList:
    """Active departments of one institution, by name (served from cache when warm)."""
    found = await use_cases.list_departments(call.services.db, call.services.cache.cache, call.path["institution_id"])
    if found is None:
        raise not_found("institution")
    return DepartmentList(items=[DepartmentOut(**vars(d)) for d in found])


directory = entrypoint(spec)
