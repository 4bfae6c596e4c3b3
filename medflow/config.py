"""The one place configuration is read: ``MEDFLOW_*`` environment variables.

Unset URLs select the embedded defaults (SQLite, in-process cache and events, a local
folder for objects). Settings are validated once at start; a bad value stops the process
with a message naming the variable, never its value (it may be a secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path(".local/data")


class ConfigError(RuntimeError):
    """Raised when the environment does not describe a valid configuration."""


class Settings(BaseSettings):
    """Every setting the platform reads, with its default and its rule."""

    model_config = SettingsConfigDict(env_prefix="MEDFLOW_", extra="ignore", frozen=True)

    env: Literal["dev", "test", "prod"] = "dev"
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Embedded state: SQLite file, objects, keys.")

    # SQL: SQLAlchemy URL. mysql+pymysql / mysql+aiomysql / sqlite / sqlite+aiosqlite.
    database_url: SecretStr | None = None
    database_pool_size: int = Field(10, ge=1, le=200)
    database_echo: bool = False

    # Redis for cache, locks, rate limits and pub/sub; unset = in-process.
    redis_url: SecretStr | None = None
    redis_max_connections: int = Field(50, ge=1, le=10_000)
    cache_namespace: str = Field("medflow", pattern=r"^[A-Za-z0-9_-]{1,40}$",
                                 description="Prefix of every cache key (environments sharing a Redis).")
    # Cache-aside for read-mostly data (announcements, profiles, dictionaries); off = every read
    # goes to SQL (the uncached baseline of bench/cache_read.py).
    cache_aside: bool = True

    # Kafka for events; unset = in-process bus.
    kafka_bootstrap: str | None = None
    kafka_client_id: str = "medflow"
    kafka_namespace: str = Field("", pattern=r"^[a-z0-9_-]{0,40}$",
                                 description="Prefix of topics and consumer groups (environments sharing a cluster).")
    kafka_send_timeout_s: float = Field(30.0, ge=2, le=300, description=(
        "How long a publish waits for the brokers' acknowledgement before it fails (the producer's "
        "delivery time-out): what a request waits when the brokers are down."))
    kafka_session_timeout_s: float = Field(45.0, ge=6, le=300, description=(
        "How long the brokers wait for a consumer that stopped heartbeating (a crashed worker) before "
        "its partitions move to another: the longest a crashed worker's events wait. A worker that "
        "stops cleanly leaves its group at once."))

    # S3-compatible object store; unset = a local folder.
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    s3_bucket_prefix: str = Field("medflow", pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")

    # Signed read URLs: lifetime and (embedded store only) the signing key.
    signed_url_ttl_s: int = Field(300, ge=10, le=3600)
    url_signing_key: SecretStr | None = None
    public_base_url: str = "http://127.0.0.1:8080"

    # Imaging: the largest DICOM instance and upload accepted, parallel ingestions per batch,
    # and the DICOM C-STORE receiver (medflow dicom-scp; `serve` starts one when given a port).
    imaging_max_instance_bytes: int = Field(512 * 1_048_576, ge=1024, le=4 * 1_073_741_824)
    imaging_max_upload_bytes: int = Field(1_073_741_824, ge=1024, le=64 * 1_073_741_824)
    imaging_concurrency: int = Field(4, ge=1, le=64)
    dicom_ae_title: str = Field("MEDFLOW", pattern=r"^[A-Za-z0-9_ -]{1,16}$")

    # Search exports answered at once up to this many rows (larger ones become jobs).
    export_max_rows: int = Field(10_000, ge=1, le=1_000_000)

    # Bulk jobs: rows per batch (one transaction and checkpoint each), seconds one delivery
    # works before handing the rest to a continuation event, default deadline, id-list cap.
    job_batch_size: int = Field(1000, ge=1, le=50_000)
    job_slice_s: float = Field(20.0, gt=0, le=600)
    job_deadline_s: int = Field(3600, ge=1, le=7 * 86400)
    job_max_ids: int = Field(10_000, ge=1, le=1_000_000)
    job_batch_pause_s: float = Field(0.0, ge=0, le=10, description="Pause between batches (tests, throttling).")

    # HTTP runtime.
    max_body_bytes: int = Field(1_048_576, ge=1024, le=1_073_741_824)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Authentication: Ed25519 JWT keys (a JSON key set, see medflow/auth/keys.py), token lifetimes.
    jwt_keys_file: Path | None = Field(None, description="Key set; unset = generated once into data_dir.")
    jwt_issuer: str = "medflow"
    access_token_ttl_s: int = Field(900, ge=60, le=3600)
    refresh_token_ttl_s: int = Field(14 * 86400, ge=3600, le=90 * 86400)
    revocation_recheck_s: float = Field(1.0, ge=0, le=30, description=(
        "How long a process trusts that a token was not revoked before asking the cache again; "
        "a revocation reaches other processes within this time (0: ask on every request)."))
    # Argon2id cost; raising it makes every stored hash rehash at its owner's next login.
    argon2_time_cost: int = Field(3, ge=1, le=20)
    argon2_memory_kib: int = Field(65536, ge=8192, le=1048576)
    argon2_parallelism: int = Field(2, ge=1, le=16)
    # Login rate limits (per minute) and how many proxy hops to trust for the client address.
    login_rate_per_account: int = Field(10, ge=1, le=1000)
    login_rate_per_address: int = Field(30, ge=1, le=10000)
    trusted_proxy_hops: int = Field(0, ge=0, le=5)

    # Event delivery (in-process bus and the Kafka relay share these rules).
    event_max_attempts: int = Field(5, ge=1, le=50)
    event_backoff_initial_s: float = Field(0.2, gt=0, le=60)
    event_backoff_max_s: float = Field(10.0, gt=0, le=600)
    event_max_concurrency: int | None = Field(None, ge=1, le=64, description=(
        "Cap on a consumer's delivery.concurrency in this process (unset: the catalogue's)."))

    # Knowledge assistant: any OpenAI-compatible chat endpoint (in the cluster KServe's
    # Hugging Face/vLLM runtime, base URL ending in /openai/v1); unset = extractive answers.
    llm_base_url: str | None = Field(None, pattern=r"^https?://\S+$")
    llm_model: str = Field("medflow-llm", min_length=1, max_length=200)
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(30.0, gt=0, le=600, description="Time-out for the first token, per try.")
    llm_attempts: int = Field(2, ge=1, le=5)
    llm_max_tokens: int = Field(512, ge=16, le=8192)
    # Analysis workflow: the KServe model servers (``{model_dns}`` or ``{model}`` in the URL
    # picks one service per model, as InferenceServices are in the cluster), time-outs,
    # retries and the reaper.
    models_url: str = Field("http://127.0.0.1:8090", pattern=r"^https?://\S+$", description=(
        "Base URL of the v2 model server. May hold {model} (the v2 model name, e.g. chest_xray_diagnosis) or "
        "{model_dns} (the same with '-' for '_', the InferenceService name, e.g. chest-xray-diagnosis); "
        "the cluster's: http://{model_dns}-predictor.medflow.svc.cluster.local (k8s/base/core/config.yaml)"))
    analysis_model_timeout_s: float = Field(30.0, gt=0, le=600, description="Time-out per model call.")
    analysis_model_attempts: int = Field(3, ge=1, le=10, description="Tries of one model call (transient failures).")
    analysis_max_attempts: int = Field(3, ge=1, le=20, description="Deliveries of a task before it fails.")
    analysis_lock_ttl_s: float = Field(10.0, gt=0, le=600, description="TTL of the per-input lock (renewed while held).")
    analysis_stale_s: float = Field(120.0, gt=0, le=86400, description=(
        "A queued task without progress, or a running one past its lease, this long is stuck: the reaper acts."))
    analysis_max_requeues: int = Field(3, ge=0, le=100, description="Times the reaper re-publishes a stuck task before failing it.")
    knowledge_max_document_bytes: int = Field(10 * 1_048_576, ge=1024, le=200 * 1_048_576)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("sqlite", "mysql+pymysql://", "mysql+aiomysql://")):
            raise ValueError("must be a sqlite, mysql+pymysql or mysql+aiomysql URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @model_validator(mode="after")
    def _s3_credentials_together(self) -> "Settings":
        if self.s3_endpoint and not (self.s3_access_key and self.s3_secret_key):
            raise ValueError("MEDFLOW_S3_ENDPOINT needs MEDFLOW_S3_ACCESS_KEY and MEDFLOW_S3_SECRET_KEY")
        return self

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "medflow.sqlite3"

    def resolved_database_url(self) -> str:
        """The configured SQL URL, or the embedded SQLite file under ``data_dir``."""
        if self.database_url:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.sqlite_path}"


def load_settings(**overrides: object) -> Settings:
    """Read and validate the environment; raise ConfigError with readable messages."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            name = f"MEDFLOW_{field.upper()}" if err["loc"] else field
            lines.append(f"  {name}: {err['msg']}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
