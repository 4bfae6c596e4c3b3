"""ASGI middleware around KServe's model server.

Model versions on the v2 paths. KServe's server answers 501 to any
``/v2/models/{name}/versions/{v}/...``; this ASGI middleware serves the version a model
has (by stripping it from the path) and answers 404 with a v2 error for any other version
and for unknown models."""

from __future__ import annotations

import json
import re

_VERSIONED = re.compile(r"^/v2/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)(?P<rest>/.*)?$")


class ModelVersions:
    def __init__(self, app, versions: dict[str, str]):
        self.app = app
        self.versions = versions

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            m = _VERSIONED.match(scope.get("path", ""))
            if m:
                name, version, rest = m["name"], m["version"], m["rest"] or ""
                if self.versions.get(name) != version:
                    error = (f"Model {name} has no version {version}; it serves version {self.versions[name]}."
                             if name in self.versions else f"Model with name {name} does not exist.")
                    body = json.dumps({"error": error}).encode()
                    await send({"type": "http.response.start", "status": 404,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
                path = f"/v2/models/{name}{rest}"
                scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.app(scope, receive, send)


class NoDataInServerErrors:
    """A 500 from KServe's server carries ``str(exception)``, which for some malformed requests
    quotes the request's bytes (for example BYTES tensors that are not UTF-8 sent through the
    binary extension): patient data in an error. Every 500 body is replaced with a generic v2
    error; 4xx bodies (our own messages, which never quote values) pass unchanged."""

    BODY = json.dumps({"error": "internal error while serving the request; nothing about it is echoed"}).encode()

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replaced = False

        async def guarded(message):
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] >= 500:
                replaced = True
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in (b"content-length", b"content-type")]
                headers += [(b"content-type", b"application/json"), (b"content-length", str(len(self.BODY)).encode())]
                await send({**message, "headers": headers})
                await send({"type": "http.response.body", "body": self.BODY})
                return
            if replaced:
                return  # the original body is dropped
            await send(message)

        await self.app(scope, receive, guarded)


class WithholdExceptionText:
    """A logging filter for KServe's logger: its error handlers log every exception with its
    message and traceback, and some messages quote the request. Keep the exception's type
    and where it was raised; drop the message."""

    def filter(self, record) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            tb = record.exc_info[2]
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
            record.msg = f"{record.getMessage()} {type(exc).__name__}{where} (message withheld: it may quote the request)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True
