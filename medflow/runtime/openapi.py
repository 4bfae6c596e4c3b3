"""OpenAPI 3.1 documents generated from the operation declarations.

Each function has its own document (served at its ``/openapi.json``); the one-process
server merges them under ``/api/<function>`` into ``/api/openapi.json``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from medflow.runtime.spec import HttpFunction, Operation

_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_PATH_PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")
_REF = "#/components/schemas/{model}"

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["loc", "msg", "type"],
                                               "properties": {"loc": {"type": "string"}, "msg": {"type": "string"},
                                                              "type": {"type": "string"}}}},
    },
}
_ERROR_TEXT = {400: "Malformed request", 401: "Not authenticated", 403: "Not allowed", 404: "Not found",
               409: "Conflict", 413: "Body too large", 415: "Unsupported media type", 422: "Validation failed",
               429: "Rate limited", 500: "Internal error", 503: "A dependency is unavailable; retry"}


def _models(ops: Iterable[Operation]) -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}
    for op in ops:
        for model in (op.query, op.body, op.response):
            if model is not None:
                seen[f"{model.__module__}.{model.__qualname__}"] = model
    return list(seen.values())


def _errors_of(op: Operation) -> list[int]:
    codes = {400, 500, 503, *op.errors}
    if op.query or op.body:
        codes.add(422)
    if op.body:
        codes.update({413, 415})
    if not op.access.public:
        codes.update({401, 403})
    if "{" in op.path:
        codes.add(404)
    return sorted(codes)


def _parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "integer" if conv == ":int" else "string"}}
              for name, conv in _PATH_PARAM.findall(op.path)]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=_REF)
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop,
                           **({"description": prop["description"]} if "description" in prop else {})})
    return params


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": (op.handler.__doc__ or "").strip() + f"\n\nAccess: {op.access.describe()}.",
        "tags": [op.function],
        "parameters": _parameters(op, schemas),
        "responses": {},
        "x-medflow-access": "public" if op.access.public else sorted(op.access.roles),
    }
    if not op.access.public:
        doc["security"] = [{"bearer": []}]
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": _REF.format(model=op.body.__name__)}}}}
    elif op.consumes:
        doc["requestBody"] = {"required": True, "content": {m: {"schema": {"type": "string", "format": "binary"}}
                                                            for m in op.consumes}}
    ok: dict[str, Any] = {"description": "Success"}
    if op.produces == "text/event-stream":
        ok["content"] = {op.produces: {"schema": {"type": "string", "description": "Server-sent events."}}}
    elif op.produces:
        ok["content"] = {op.produces: {"schema": {"type": "string", "format": "binary"}}}
    elif op.response is not None:
        ok["content"] = {"application/json": {"schema": {"$ref": _REF.format(model=op.response.__name__)}}}
    doc["responses"][str(op.status)] = ok
    for code in _errors_of(op):
        doc["responses"][str(code)] = {"description": _ERROR_TEXT.get(code, "Error"),
                                       "content": {"application/problem+json": {"schema": {"$ref": _REF.format(model="Problem")}}}}
    return doc


def openapi_path(prefix: str, path: str) -> str:
    """The document's path template: convertors (``{version:int}``) dropped."""
    return prefix + _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def build_document(functions: list[HttpFunction], prefix_of=lambda f: "", title: str = "MedFlow API",
                   version: str = "0.1.0") -> dict[str, Any]:
    ops = [op for f in functions for op in f.operations]
    _, defs = models_json_schema([(m, "validation") for m in _models(ops)], ref_template=_REF)
    schemas = dict(defs.get("$defs", {}))
    schemas["Problem"] = PROBLEM_SCHEMA
    paths: dict[str, Any] = {}
    for function in functions:
        for op in function.operations:
            paths.setdefault(openapi_path(prefix_of(function), op.path), {})[op.method.lower()] = _operation(op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version,
                 "description": "Errors are application/problem+json (RFC 9457). Lists use opaque keyset cursors."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "tags": [{"name": f.name, "description": f.title} for f in functions],
    }


def function_document(function: HttpFunction) -> dict[str, Any]:
    return build_document([function], title=f"MedFlow {function.name}")
