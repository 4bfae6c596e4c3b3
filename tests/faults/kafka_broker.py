"""A private, throw-away Kafka broker (KRaft, one node) for tests that kill and restart
one: never the shared test broker. It uses the jars ``infra/local/kafka.sh`` installed
under ``~/.cache/medflow`` and its own free ports and data directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support_processes import free_port

KAFKA_VERSION = "4.1.1"
LIBS = Path(os.environ.get("MEDFLOW_CACHE_DIR", Path.home() / ".cache" / "medflow")) / f"kafka-{KAFKA_VERSION}" / "libs"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _answers(bootstrap: str) -> bool:
    from kafka import KafkaAdminClient
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    except Exception:
        return False
    try:
        admin.list_topics()
        return True
    except Exception:
        return False
    finally:
        admin.close()


class PrivateBroker:
    def __init__(self, workdir: Path) -> None:
        if not (LIBS / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            pytest.fail(f"Kafka jars not found in {LIBS}: run infra/local/kafka.sh install")
        self.java = shutil.which("java") or pytest.fail("java not found")
        self.dir = workdir
        self.port, self.controller = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.config = workdir / "server.properties"
        self.log = workdir / "kafka.log"
        self.proc: subprocess.Popen | None = None
        (workdir / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text("\n".join([
            "node.id=1", "process.roles=broker,controller",
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT", "controller.listener.names=CONTROLLER",
            f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller}",
            f"log.dirs={workdir / 'data'}", "num.partitions=3", "auto.create.topics.enable=true",
            "default.replication.factor=1", "min.insync.replicas=1", "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=3", "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1", "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1", "group.initial.rebalance.delay.ms=0",
            "num.network.threads=2", "num.io.threads=2", ""]))
        cluster_id = subprocess.run([self.java, "-cp", f"{LIBS}/*", "kafka.tools.StorageTool", "random-uuid"],
                                    check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run([self.java, "-cp", f"{LIBS}/*", "kafka.tools.StorageTool", "format", "--standalone",
                        "-t", cluster_id, "-c", str(self.config)], check=True, capture_output=True)

    def start(self, timeout_s: float = 120.0) -> None:
        log = open(self.log, "ab")
        self.proc = subprocess.Popen([self.java, "-Xms128m", "-Xmx384m", "-cp", f"{LIBS}/*", "kafka.Kafka", str(self.config)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private Kafka exited:\n{self.log.read_text()[-3000:]}")
            if _port_open(self.port) and _answers(self.bootstrap):
                return
            time.sleep(0.3)
        raise RuntimeError("private Kafka did not start in time")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash or a node loss."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill()
