import time
async def test_probe(platform):
    t = time.monotonic()
    r = await platform.get("/healthz")
    assert r.status_code == 200
