"""A fault injector in front of the real model server, run as its own process by tests: it
forwards Open Inference Protocol calls to the real KServe server and, by the mode set with
``PUT /_mode`` ({"mode": ..., "n": ..., "delay_s": ...}), misbehaves like a model in
trouble:

- ``pass``: forward unchanged;
- ``down``: 503 without forwarding (a model that is down or not loaded);
- ``flaky``: 503 for the next ``n`` calls, then forward;
- ``slow``: wait ``delay_s`` before forwarding (time-outs, a worker killed mid-call);
- ``tamper``: forward, then break the answer (probabilities outside 0-1): a result that
  fails its schema.

``GET /_calls`` answers how many infer calls reached the proxy and how many it forwarded.
Usage: python tests/model_proxy.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import asyncio
import sys

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

STATE = {"mode": "pass", "n": 0, "delay_s": 0.0, "calls": 0, "forwarded": 0}


async def infer(request: Request) -> Response:
    STATE["calls"] += 1
    mode = STATE["mode"]
    if mode == "down" or (mode == "flaky" and STATE["n"] > 0):
        STATE["n"] -= 1
        return JSONResponse({"error": "model not ready"}, status_code=503)
    if mode == "slow":
        await asyncio.sleep(STATE["delay_s"])
    STATE["forwarded"] += 1
    upstream = await CLIENT.post(str(request.url.path), content=await request.body(),
                                 headers={"content-type": request.headers.get("content-type", "application/json")})
    if mode != "tamper" or upstream.status_code != 200:
        return Response(upstream.content, upstream.status_code, media_type="application/json")
    body = upstream.json()
    for out in body["outputs"]:
        if out["datatype"] == "FP32":
            out["data"] = [1.7 for _ in out["data"]]
    return JSONResponse(body)


async def set_mode(request: Request) -> Response:
    STATE.update({"n": 0, "delay_s": 0.0, **await request.json()})
    return JSONResponse(STATE)


async def calls(request: Request) -> Response:
    return JSONResponse({"calls": STATE["calls"], "forwarded": STATE["forwarded"]})


async def ready(request: Request) -> Response:
    return JSONResponse({"ready": True})


app = Starlette(routes=[Route("/v2/models/{name}/infer", infer, methods=["POST"]),
                        Route("/_mode", set_mode, methods=["PUT"]), Route("/_calls", calls, methods=["GET"]),
                        Route("/v2/health/ready", ready, methods=["GET"])])

if __name__ == "__main__":
    port, upstream = int(sys.argv[1]), sys.argv[2]
    CLIENT = httpx.AsyncClient(base_url=upstream, timeout=60)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
