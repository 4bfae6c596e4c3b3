"""Model versions on the v2 paths. KServe's server answers 501 to any
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
