"""One place for every setting a service reads: `ONEGRID_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    """How to reach the Kafka-protocol broker (`ONEGRID_KAFKA_*`)."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    # Apache Kafka supports idempotent producers; tansu answers InitProducerId with an
    # error, so the local stack turns this off. Exactly-once effect comes from the inbox.
    enable_idempotence: bool = True
    # Static membership: a restarted pod with the same instance id rejoins without a
    # rebalance. Kubernetes sets it from the pod name; empty means dynamic membership.
    group_instance_id: str | None = None
    client_id_prefix: str = "onegrid"
    # Appended to every consumer group id: two deployments side by side on one broker.
    group_suffix: str = ""
    # Where a consumer group that never committed starts. "beginning" replays the topic
    # (a new service learns the history); "end" pins it, at start-up, to the end offsets,
    # so it acts only on what comes after (a second deployment, a test flow).
    new_groups_start_at: Literal["beginning", "end"] = "beginning"
    # How long a fetch waits for records, and a batch subscriber sleeps after an empty
    # poll. Apache Kafka answers a waiting fetch as soon as data arrives, so the defaults
    # cost nothing there; tansu answers when the wait ends, so each hop costs up to this.
    fetch_max_wait_ms: int = Field(default=500, ge=1, le=30_000)
    batch_timeout_ms: int = Field(default=200, ge=1, le=30_000)


class DatabaseSettings(BaseSettings):
    """PostgreSQL (`ONEGRID_DB_*`). Each service owns one schema in this database."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_DB_", extra="ignore")

    dsn: str = "postgresql://postgres@127.0.0.1:5432/onegrid"
    pool_min_size: int = 2
    pool_max_size: int = 10
    command_timeout_s: float = 30.0
    # Count every statement on /metrics (`onegrid_db_statements_total`): a few µs each, so
    # off unless asked for; `onegrid bench` turns it on to report statements per case.
    count_statements: bool = False


class RedisSettings(BaseSettings):
    """Redis (`ONEGRID_REDIS_*`): caches, rate limits, rankings, locks. Nothing durable."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_REDIS_", extra="ignore")

    url: str = "redis://127.0.0.1:6379/0"


class SecuritySettings(BaseSettings):
    """Tokens, signatures and encryption keys (`ONEGRID_SECURITY_*`)."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_SECURITY_", extra="ignore")

    # Development defaults only: every deployment sets these from a secret.
    jwt_secret: SecretStr = SecretStr("onegrid-dev-jwt-secret-change-me-0123456789")
    jwt_issuer: str = "onegrid"
    jwt_audience: str = "onegrid"
    jwt_ttl_s: int = 3600
    # PII keys as "key_id:base64(32 bytes)" pairs separated by commas; the first encrypts.
    pii_keys: SecretStr = SecretStr("dev1:ZGV2LW9ubHktcGlpLWtleS0zMi1ieXRlcy0wMDAwMDA=")
    callback_hmac_secret: SecretStr = SecretStr("onegrid-dev-callback-secret")


class TelemetrySettings(BaseSettings):
    """Logs and traces (`ONEGRID_TELEMETRY_*`)."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_TELEMETRY_", extra="ignore")

    log_level: str = "INFO"
    log_json: bool = True
    # OTLP/HTTP endpoint of a collector; empty means spans go to `traces_file`.
    otlp_endpoint: str | None = None
    traces_file: str | None = None
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class Settings(BaseSettings):
    """Everything, grouped. `get_settings()` reads the environment once per process."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_", extra="ignore")

    environment: Literal["dev", "test", "prod"] = "dev"
    city_code: str = Field(default="420500", pattern=r"^\d{6}$")  # 宜昌市 administrative code
    city_timezone: str = "Asia/Shanghai"
    http_host: str = "127.0.0.1"
    # Bounded retries before a message goes to the service's dead-letter topic.
    consumer_max_attempts: int = Field(default=3, ge=1, le=20)
    consumer_retry_backoff_s: float = Field(default=0.2, ge=0.0)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
