"""Starting platform processes for end-to-end tests: the one-process server, a function
alone under functions-framework, the event relay. Each on a free loopback port, with its
output kept in a log file for when a test fails."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFLOW_") or k.startswith("MEDFLOW_TEST_")}
    env.update(extra)
    return env


@contextmanager
def running(cmd: list[str], env: dict[str, str], log_path: Path, ready_url: str | None = None,
            timeout_s: float = 60.0) -> Iterator[subprocess.Popen]:
    """Start ``cmd``; wait until ``ready_url`` answers 200; stop it (SIGTERM, then SIGKILL)."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=_clean_env(env), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        if ready_url:
            _wait_ready(proc, ready_url, timeout_s, log_path)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


def _wait_ready(proc: subprocess.Popen, url: str, timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready after {timeout_s}s:\n{log_path.read_text()[-3000:]}")


def serve_command(port: int, *extra: str) -> list[str]:
    return [str(BIN / "medflow"), "serve", "--port", str(port), "--migrate", *extra]


def function_command(name: str, port: int) -> list[str]:
    """A function alone, exactly as its Knative Service runs it."""
    return [str(BIN / "functions-framework"), "--asgi", "--target", name, "--source",
            str(REPO / "functions" / name / "main.py"), "--host", "127.0.0.1", "--port", str(port)]


def models_command(port: int, *extra: str) -> list[str]:
    """The local KServe model server (``medflow models serve``) on ``port``."""
    return [str(BIN / "medflow"), "models", "serve", "--http-port", str(port), "--cpu", *extra]


def wait_for_line(log: Path, text: str, timeout_s: float = 90.0) -> None:
    """Wait until a process's log holds ``text`` (e.g. a worker's ``ready``); fail with the log's tail."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {log}:\n{log.read_text()[-3000:] if log.exists() else ''}")
