"""Configuration, read once at start-up from ``LEDGER_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class Settings(BaseSettings):
    """Every setting of the ledger, typed and validated."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql://… of the server to use; unset: an embedded server under data_dir",
    )
    read_database_urls: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="postgresql://… of streaming replicas for reads (comma-separated; none: the "
        "primary serves every read)",
    )
    replica_max_lag_ms: float = Field(
        default=5000.0,
        ge=1,
        le=3_600_000,
        description="a replica further behind the primary than this is skipped",
    )
    unknown_token_primary_reads_per_s: float = Field(
        default=50.0,
        ge=0,
        le=100_000,
        description="most verify misses per second that a replica answered 'unknown' and that "
        "are asked again of the primary (a token minted elsewhere a moment ago)",
    )
    data_dir: Path = Field(
        default=Path(".ledger"), description="where the embedded PostgreSQL keeps its data"
    )
    lock_timeout_s: int = Field(
        default=5,
        ge=1,
        le=600,
        description="how long a write waits for a key or row a concurrent write holds",
    )
    idle_in_transaction_timeout_s: float = Field(
        default=10.0,
        ge=0.1,
        le=3600,
        description="longest a ledger connection may sit idle inside a transaction",
    )
    transaction_timeout_s: float = Field(
        default=120.0,
        ge=1,
        le=86_400,
        description="longest transaction of the ledger's own pool (PostgreSQL 17 and later)",
    )
    audit_wait_s: float = Field(
        default=5.0,
        ge=0.1,
        le=600,
        description="longest an audit query waits for the event log's horizon, then 503",
    )
    pool_size: int = Field(default=8, ge=1, le=200, description="PostgreSQL connections kept open")
    max_batch: int = Field(
        default=256, ge=1, le=10_000, description="most commands that share one write transaction"
    )
    writer_threads: int = Field(
        default=4,
        ge=0,
        le=16,
        description="writer threads (batches in flight); 0: each command its own transaction",
    )
    write_linger_ms: float = Field(
        default=2.0,
        ge=0,
        le=50,
        description="longest a write waits for as many commands as the previous batch carried",
    )
    verify_cache_max_ttl_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="longest a verify result is cached (0: no cache, every process exact)",
    )
    verify_cache_max_entries: int = Field(
        default=100_000, ge=0, le=10_000_000, description="most tokens the verify cache holds"
    )
    last_used_flush_s: float = Field(
        default=30.0, gt=0, le=60, description="how often buffered last_used_at values are written"
    )
    last_used_max_entries: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="most credentials buffered for last_used_at",
    )
    projection_batch_size: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="most events a projection writes per transaction",
    )
    run_projections: bool = Field(
        default=True, description="run the projection runner inside `ledger serve`"
    )
    http_header_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="longest a client may take to send a request's headers (then 408, closed)",
    )
    http_body_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="longest a client may take to send a request's body once its headers are in",
    )
    exchange_failures_per_minute: int = Field(
        default=60,
        ge=0,
        le=1_000_000,
        description="failed exchanges one client address may make per minute, then 429 "
        "(per process; 0: no limit)",
    )
    trusted_proxy_header: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9-]{1,64}$",
        description="header that carries the client address (e.g. X-Forwarded-For), read only "
        "when set; unset: the socket's peer address",
    )
    trusted_proxy_hops: int = Field(
        default=1,
        ge=1,
        le=10,
        description="trusted proxies in front of the service: the client address is this many "
        "entries from the right of the header's list",
    )
    command_attempts: int = Field(
        default=20, ge=1, le=1000, description="tries of a command that loses optimistic races"
    )
    log_level: LogLevel | None = Field(
        default=None,
        description="logging level (any case); unset: INFO for `ledger serve`, WARNING otherwise",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def log_level_or(self, default: LogLevel) -> LogLevel:
        """The configured level, or the entry point's ``default``."""
        return self.log_level or default

    signing_key_file: Path | None = Field(
        default=None,
        description="the Ed25519 key that signs checkpoints (default <data_dir>/signing.key)",
    )
    checkpoint_dir: Path | None = Field(
        default=None, description="where `ledger serve` writes signed checkpoints; unset: none"
    )
    checkpoint_interval_s: float = Field(
        default=3600.0, ge=1, le=86_400 * 7, description="how often a checkpoint is written"
    )
    verify_interval_s: float | None = Field(
        default=None,
        ge=1,
        le=86_400 * 7,
        description="how often `ledger serve` verifies the store in the background; unset: never",
    )
    exchange_key_file: Path | None = Field(
        default=None,
        description="the keys that derive daemon tokens (default <data_dir>/exchange.key)",
    )
    exchange_retry_window_s: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="how long a lost exchange answer can be fetched again (0: never)",
    )
    replay_revokes: bool = Field(
        default=False,
        description="a replayed install token revokes the daemon token it produced",
    )
    max_tokens_per_user: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description="most usable personal access tokens a user holds (0: no limit)",
    )
    max_daemon_tokens_per_workspace: int = Field(
        default=1000,
        ge=0,
        le=1_000_000,
        description="most unrevoked daemon tokens a workspace holds (0: no limit)",
    )

    @field_validator("read_database_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            for url in value:
                if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
                    msg = "LEDGER_READ_DATABASE_URLS must be postgresql:// URLs, comma-separated"
                    raise ValueError(msg)
            return tuple(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            msg = "LEDGER_DATABASE_URL must be a postgresql:// URL"
            raise ValueError(msg)
        return value
