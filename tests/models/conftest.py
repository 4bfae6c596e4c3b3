"""One real KServe model server process (``medflow models serve``) with every model in the
checkout, shared by the model contract tests; requests go over HTTP as any client's would."""

from __future__ import annotations

import httpx
import pytest

from support_processes import free_port, models_command, running


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("models") / "models.log"
    # a long batching window so the batching test sees concurrent requests share an engine call
    with running(models_command(port, "--max-wait-ms", "30", "--threads", "1"), {}, log,
                 ready_url=f"http://127.0.0.1:{port}/v2/health/ready", timeout_s=120):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def models_client(model_server):
    async with httpx.AsyncClient(base_url=model_server, timeout=60) as client:
        yield client
