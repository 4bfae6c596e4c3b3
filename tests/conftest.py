"""Shared fixtures: every adapter pair is offered to contract suites as ``memory`` and ``real``.

Real servers come from ``infra/local/up.sh`` (``.local/infra/env.sh`` exports
``MEDFLOW_TEST_*``). Without them the real variants are skipped on a developer's machine,
but fail when ``MEDFLOW_REQUIRE_REAL=1`` (the test command and CI set it), so CI can never
pass by skipping the real servers.
"""

from __future__ import annotations

import os
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def real_setting(name: str) -> str:
    """A MEDFLOW_TEST_* variable, or skip/fail the test depending on MEDFLOW_REQUIRE_REAL."""
    value = os.environ.get(name)
    if value:
        return value
    message = f"{name} is not set: run `bash infra/local/up.sh && . .local/infra/env.sh`"
    if os.environ.get("MEDFLOW_REQUIRE_REAL") == "1":
        pytest.fail(message)
    pytest.skip(message)


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(params=["memory", "real"])
async def cache_backend(request):
    """A fresh cache backend (cache, locks, rate limiter, pub/sub) per test."""
    if request.param == "memory":
        from medflow.cache.memory import MemoryCacheBackend
        backend = MemoryCacheBackend()
    else:
        from medflow.cache.redis import RedisCacheBackend
        backend = RedisCacheBackend(real_setting("MEDFLOW_TEST_REDIS_URL"), namespace=unique("t"))
    yield backend
    await backend.close()


@pytest.fixture(params=["memory", "real"])
async def object_store(request, tmp_path):
    """A fresh object store with its buckets created."""
    if request.param == "memory":
        from medflow.storage.local import LocalObjectStore
        store = LocalObjectStore(tmp_path / "objects", secrets.token_bytes(32), "http://127.0.0.1:8080")
    else:
        from medflow.storage.s3 import S3ObjectStore
        store = S3ObjectStore(
            endpoint=real_setting("MEDFLOW_TEST_S3_ENDPOINT"),
            access_key=real_setting("MEDFLOW_TEST_S3_ACCESS_KEY"),
            secret_key=real_setting("MEDFLOW_TEST_S3_SECRET_KEY"),
            region=os.environ.get("MEDFLOW_TEST_S3_REGION", "us-east-1"),
            bucket_prefix=unique("t"),
        )
    await store.ensure_buckets()
    yield store
    await store.close()


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Delete every topic whose name starts with ``prefix`` (a test's own), and its consumer
    groups: thousands of leftover test topics make the shared broker slow to restart."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    if not prefix or prefix in (".", "medflow."):
        raise ValueError("refusing to delete topics without a test-unique prefix")
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="medflow-test-cleanup")
    except KafkaError:
        return
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        if topics:
            admin.delete_topics(topics, raise_errors=False)
        groups = [g.get("group_id") for g in admin.list_groups()]   # kafka-python 3: dicts
        mine = [g for g in groups if isinstance(g, str) and g.startswith(prefix)]
        if mine:
            admin.delete_groups(mine)
    except KafkaError:
        pass          # best effort: a cleanup failure must not fail the test
    finally:
        admin.close()


@pytest.fixture
async def bus_factory():
    """Build event buses of one kind; ``kind`` is 'memory' or 'real' (Kafka, unique topics per test)."""
    from medflow.bus.ports import DeliveryPolicy

    created = []
    topic_prefix = unique("t")

    async def make(kind: str, policy: DeliveryPolicy | None = None):
        policy = policy or DeliveryPolicy(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05)
        if kind == "memory":
            from medflow.bus.memory import MemoryEventBus
            bus = MemoryEventBus(policy)
        else:
            from medflow.bus.kafka import KafkaEventBus
            bus = KafkaEventBus(
                real_setting("MEDFLOW_TEST_KAFKA_BOOTSTRAP"),
                topic_for=lambda event_type: f"{topic_prefix}.{event_type.split('.')[2]}",
                dead_letter_topic_for=lambda group: f"{topic_prefix}.deadletter.{group}",
                default_policy=policy,
            )
        created.append(bus)
        return bus

    yield make
    for bus in created:  # stop() is idempotent: tests may have stopped theirs already
        await bus.stop()
    if any(type(bus).__name__ == "KafkaEventBus" for bus in created):
        delete_topics(real_setting("MEDFLOW_TEST_KAFKA_BOOTSTRAP"), topic_prefix + ".")


# --- SQL -----------------------------------------------------------------------------

def _mysql_admin_url() -> str:
    return real_setting("MEDFLOW_TEST_MYSQL_URL")


def create_mysql_database() -> str:
    """A new, empty database on the test MariaDB; returns its URL."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    base = make_url(_mysql_admin_url())
    name = unique("medflow_t")
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    engine.dispose()
    return SecretUrl(base.set(database=name).render_as_string(hide_password=False))


def drop_mysql_database(url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    engine = sa.create_engine(parsed.set(database=make_url(_mysql_admin_url()).database))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{parsed.database}`"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "mariadb"])
def empty_sql_url(request, tmp_path):
    """An empty database: a SQLite file or a fresh MariaDB database (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'medflow.sqlite3'}"
        return
    url = create_mysql_database()
    yield url
    drop_mysql_database(url)


@pytest.fixture
async def database(empty_sql_url):
    """A migrated database behind the async adapter."""
    from medflow.db import migrate
    from medflow.db.engine import Database

    migrate.upgrade(empty_sql_url)
    db = Database(empty_sql_url)
    yield db
    await db.close()


# --- Services (the composition root) ---------------------------------------------------

class SecretUrl(str):
    """A URL with a password: a failing test's report shows it without the password."""

    def __repr__(self) -> str:
        from sqlalchemy.engine import make_url
        return f"SecretUrl({make_url(str(self)).render_as_string(hide_password=True)!r})"


class SecretEnv(dict):
    """Environment variables holding passwords: a failing test's report shows only the names."""

    def __repr__(self) -> str:
        return f"SecretEnv({sorted(self)})"


def real_settings_env(database_url: str, bucket_prefix: str) -> dict[str, str]:
    """MEDFLOW_* variables that point every adapter at the real test servers."""
    return SecretEnv({
        "MEDFLOW_DATABASE_URL": database_url,
        "MEDFLOW_REDIS_URL": real_setting("MEDFLOW_TEST_REDIS_URL"),
        "MEDFLOW_KAFKA_BOOTSTRAP": real_setting("MEDFLOW_TEST_KAFKA_BOOTSTRAP"),
        "MEDFLOW_S3_ENDPOINT": real_setting("MEDFLOW_TEST_S3_ENDPOINT"),
        "MEDFLOW_S3_ACCESS_KEY": real_setting("MEDFLOW_TEST_S3_ACCESS_KEY"),
        "MEDFLOW_S3_SECRET_KEY": real_setting("MEDFLOW_TEST_S3_SECRET_KEY"),
        "MEDFLOW_S3_REGION": os.environ.get("MEDFLOW_TEST_S3_REGION", "us-east-1"),
        "MEDFLOW_S3_BUCKET_PREFIX": bucket_prefix,
        "MEDFLOW_KAFKA_NAMESPACE": bucket_prefix,  # own topics and consumer groups: no other run's backlog
        "MEDFLOW_CACHE_NAMESPACE": bucket_prefix,  # own cache keys and rate-limit counters
    })


@pytest.fixture
async def embedded_services(tmp_path):
    """Services on the embedded defaults (SQLite, in-process cache and bus, local folder), migrated."""
    from medflow.bootstrap import build_services
    from medflow.config import Settings
    from medflow.db import migrate

    settings = Settings(data_dir=tmp_path / "data")
    migrate.upgrade(settings.resolved_database_url())
    services = build_services(settings)
    await services.objects.ensure_buckets()
    yield services
    await services.close()


# --- The one-process platform in-process (ASGI), on embedded or real adapters -----------

def settings_for_tests(data_dir: Path, **overrides):
    """Settings for tests: cheap Argon2 so suites stay fast (production cost is the default)."""
    from medflow.config import Settings
    values = {"data_dir": data_dir, "argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1,
              "event_backoff_initial_s": 0.01, "event_backoff_max_s": 0.05,
              # one consumer per group: a group of six Kafka consumers joins in ~4 s instead of ~1 s,
              # at every platform start; lanes are held by the bus contract test and the bench
              "event_max_concurrency": 1}
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_platform(kind: str, tmp_path: Path, **overrides):
    """The one-process server (every function, in-process event delivery, demo institutions)
    behind an httpx client, on the embedded adapters or on the real servers.
    ``client.services`` is the server's composition root; ``client.kind`` says which;
    ``overrides`` are further settings."""
    import httpx
    from medflow.bootstrap import build_services
    from medflow.db import migrate
    from medflow.demo import seed_institutions
    from medflow.runtime.server import create_app

    mysql_url = None
    if kind == "embedded":
        settings = settings_for_tests(tmp_path / "data", **overrides)
    else:
        mysql_url = create_mysql_database()
        env = real_settings_env(mysql_url, unique("p"))
        settings = settings_for_tests(tmp_path / "data", database_url=mysql_url, redis_url=env["MEDFLOW_REDIS_URL"],
                                      kafka_bootstrap=env["MEDFLOW_KAFKA_BOOTSTRAP"], s3_endpoint=env["MEDFLOW_S3_ENDPOINT"],
                                      s3_access_key=env["MEDFLOW_S3_ACCESS_KEY"], s3_secret_key=env["MEDFLOW_S3_SECRET_KEY"],
                                      s3_bucket_prefix=env["MEDFLOW_S3_BUCKET_PREFIX"],
                                      kafka_namespace=env["MEDFLOW_KAFKA_NAMESPACE"],
                                      cache_namespace=env["MEDFLOW_CACHE_NAMESPACE"], **overrides)
    migrate.upgrade(settings.resolved_database_url())
    services = build_services(settings)
    app = create_app(services, on_start=seed_institutions)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://medflow") as client:
                client.services = services
                client.kind = kind
                yield client
    finally:
        if mysql_url:
            drop_mysql_database(mysql_url)
            delete_topics(settings.kafka_bootstrap, settings.kafka_namespace + ".")


@pytest.fixture(params=["embedded", "real"])
async def platform(request, tmp_path):
    """A fresh platform per test, on each kind of adapters (see ``running_platform``)."""
    async with running_platform(request.param, tmp_path) as client:
        yield client


# --- The diagnostic models: one real KServe model server process for the session ----------

@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    """``medflow models serve`` with every model in the checkout, on a free port; a long
    batching window (30 ms) so tests see concurrent requests share engine calls."""
    from support_processes import free_port, models_command, running

    port = free_port()
    log = tmp_path_factory.mktemp("models") / "models.log"
    with running(models_command(port, "--max-wait-ms", "30", "--threads", "1"), {}, log,
                 ready_url=f"http://127.0.0.1:{port}/v2/health/ready", timeout_s=120):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def models_client(model_server):
    import httpx
    async with httpx.AsyncClient(base_url=model_server, timeout=60) as client:
        yield client
