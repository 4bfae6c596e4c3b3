"""The composition root: read the config, build every adapter once, hand them out.

Domain code receives a ``Services`` and never asks which backend it runs on; a test
swaps an adapter by building a different ``Services``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medflow.auth.jwt_authenticator import JwtAuthenticator
from medflow.auth.keys import KeySet, load_or_create
from medflow.auth.passwords import Hasher
from medflow.auth.principal import Authenticator
from medflow.auth.revocation import Revocations
from medflow.bus.catalogue import Catalogue
from medflow.bus.ports import DeliveryPolicy, EventBus
from medflow.cache.ports import CacheBackend
from medflow.config import Settings, load_settings
from medflow.db.engine import Database
from medflow.storage.ports import ObjectStore

if TYPE_CHECKING:
    from medflow.analysis.client import ModelClient
    from medflow.analysis.progress import ProgressHub


@dataclass
class Services:
    settings: Settings
    db: Database
    cache: CacheBackend
    bus: EventBus
    objects: ObjectStore
    catalogue: Catalogue
    keys: KeySet
    authenticator: Authenticator
    revocations: Revocations
    _hasher: Hasher | None = field(default=None, repr=False)
    _models: "ModelClient | None" = field(default=None, repr=False)
    _progress: "ProgressHub | None" = field(default=None, repr=False)

    @property
    def hasher(self) -> Hasher:
        """Argon2id with the configured cost (built on first use: it hashes once to warm up)."""
        if self._hasher is None:
            s = self.settings
            self._hasher = Hasher(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)
        return self._hasher

    @property
    def models(self) -> "ModelClient":
        """The KServe v2 client of the analysis worker (built on first use: most functions never call a model)."""
        if self._models is None:
            from medflow.analysis.client import KServeClient
            s = self.settings
            self._models = KServeClient(s.models_url, timeout_s=s.analysis_model_timeout_s,
                                        attempts=s.analysis_model_attempts)
        return self._models

    @property
    def progress(self) -> "ProgressHub":
        """This process's one subscription to analysis progress, shared by every follower."""
        if self._progress is None:
            from medflow.analysis.progress import ProgressHub
            self._progress = ProgressHub(self.cache.pubsub)
        return self._progress

    def use_models(self, client: "ModelClient") -> None:
        """Swap the model client (tests point it at a model server of their own)."""
        self._models = client

    async def health(self) -> dict[str, bool]:
        """Each dependency's reachability, for /healthz."""
        checks = {"database": self.db.ping, "cache": self.cache.ping, "objects": self.objects.ping}
        result: dict[str, bool] = {}
        for name, ping in checks.items():
            try:
                result[name] = bool(await ping())
            except Exception:
                result[name] = False
        return result

    async def close(self) -> None:
        if self._models is not None:
            await self._models.close()
        if self._progress is not None:
            await self._progress.close()
        await self.bus.stop()
        await self.cache.close()
        await self.objects.close()
        await self.db.close()


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(settings.event_max_attempts, settings.event_backoff_initial_s, settings.event_backoff_max_s)


def _signing_key(settings: Settings) -> bytes:
    """The embedded store's URL-signing key: configured, or made once and kept in data_dir."""
    if settings.url_signing_key:
        return settings.url_signing_key.get_secret_value().encode()
    path = settings.data_dir / "url-signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def build_cache(settings: Settings) -> CacheBackend:
    if settings.redis_url:
        from medflow.cache.redis import RedisCacheBackend
        return RedisCacheBackend(settings.redis_url.get_secret_value(), namespace=settings.cache_namespace,
                                 max_connections=settings.redis_max_connections)
    from medflow.cache.memory import MemoryCacheBackend
    return MemoryCacheBackend()


def build_bus(settings: Settings, events: Catalogue) -> EventBus:
    if settings.kafka_bootstrap:
        from medflow.bus.kafka import KafkaEventBus
        return KafkaEventBus(settings.kafka_bootstrap, topic_for=events.topic_for,
                             dead_letter_topic_for=events.dead_letter_topic,
                             default_policy=delivery_policy(settings), client_id=settings.kafka_client_id,
                             partitions_for=events.partitions_of, send_timeout_s=settings.kafka_send_timeout_s,
                             session_timeout_s=settings.kafka_session_timeout_s)
    from medflow.bus.memory import MemoryEventBus
    return MemoryEventBus(delivery_policy(settings))


def build_objects(settings: Settings) -> ObjectStore:
    if settings.s3_endpoint:
        from medflow.storage.s3 import S3ObjectStore
        return S3ObjectStore(endpoint=settings.s3_endpoint, access_key=settings.s3_access_key.get_secret_value(),
                             secret_key=settings.s3_secret_key.get_secret_value(), region=settings.s3_region,
                             bucket_prefix=settings.s3_bucket_prefix)
    from medflow.storage.local import LocalObjectStore
    return LocalObjectStore(Path(settings.data_dir) / "objects", _signing_key(settings), settings.public_base_url)


def build_keys(settings: Settings) -> KeySet:
    """The JWT key set: the mounted file in the cluster, one made once under data_dir embedded."""
    return load_or_create(settings.jwt_keys_file or Path(settings.data_dir) / "jwt-keys.json")


def build_services(settings: Settings | None = None) -> Services:
    """Every adapter, chosen by configuration alone."""
    settings = settings or load_settings()
    events = Catalogue(namespace=settings.kafka_namespace)
    cache = build_cache(settings)
    keys = build_keys(settings)
    revocations = Revocations(cache.cache, settings.revocation_recheck_s)
    return Services(
        settings=settings,
        db=Database(settings.resolved_database_url(), pool_size=settings.database_pool_size, echo=settings.database_echo),
        cache=cache,
        bus=build_bus(settings, events),
        objects=build_objects(settings),
        catalogue=events,
        keys=keys,
        authenticator=JwtAuthenticator(keys, revocations, settings.jwt_issuer),
        revocations=revocations,
    )
