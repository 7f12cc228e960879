"""Sika's settings, read once from the environment (prefix `SIKA_`).

Every option is validated when `load_settings()` runs at start-up, so a typo fails
there rather than in a worker at 2 a.m.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError


class Settings(BaseSettings):
    """Everything Sika reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="SIKA_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".sika"), description="Keys, embedded database, reports.")
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL; embedded PostgreSQL under home when unset."
    )
    database_owner_url: SecretStr | None = Field(
        default=None,
        description="URL of the schema's owner role, for migrations; the app's URL when unset.",
    )
    broker_url: str | None = Field(
        default=None, description="amqp://... (RabbitMQ) or redis://...; in-process when unset."
    )
    ledger_key: Path | None = Field(
        default=None, description="PEM Ed25519 private key that signs ledger seals."
    )
    agent: str | None = Field(default=None, description="Default acting agent for the CLI.")
    keys_dir: Path = Field(
        default=Path("~/.config/sika/keys"),
        description="Where this person's agent keys live (NAME.pem, mode 0600); never SIKA_HOME.",
    )
    agent_key: Path | None = Field(
        default=None, description="The acting agent's private key file, instead of keys_dir."
    )
    pii_keys: SecretStr | None = Field(
        default=None,
        description='AES-256 keys for personal data, "1:<base64>,2:<base64>"; newest encrypts.',
    )
    blind_index_key: SecretStr | None = Field(
        default=None, description="Base64 HMAC key of the personal-data blind index."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"

    sandbox_url: str | None = None
    operator_timeout: float = Field(
        default=15.0, gt=0, le=300, description="Seconds to wait for an operator's answer."
    )
    queue_prefix: str = Field(
        default="sika",
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="Prefix of broker queue names; deployments sharing a broker differ in it.",
    )
    status_check_delays: tuple[int, ...] = Field(
        default=(2, 5, 15, 30, 60, 120, 300),
        description="Seconds between status queries of a pending or unknown payout (JSON list).",
    )
    callback_query_interval: float = Field(
        default=30,
        ge=0,
        le=86_400,
        description="Seconds during which callbacks naming a line already queried on a"
        " callback's word add no status query (forged callbacks cost one query a period).",
    )
    sweep_after_seconds: float = Field(
        default=600,
        gt=0,
        description="A payout line that has not moved for this long has its work re-queued.",
    )
    dispatch_chunk: int = Field(
        default=100, ge=1, le=5000, description="Payout lines carried by one worker message."
    )
    dispatch_concurrency: int = Field(
        default=16, ge=1, le=256, description="Requests in flight per operator per worker."
    )
    preflight_cache_hours: float = Field(
        default=24,
        ge=0,
        le=24 * 30,
        description="A number's look-up verdict is reused for this long by later pre-flights.",
    )
    preflight_name_threshold: int = Field(
        default=85,
        ge=50,
        le=100,
        description="Lowest name score (0-100) a payee's registered name may have against"
        " the wallet holder's for the line to clear pre-flight.",
    )
    preflight_concurrency: int = Field(
        default=8, ge=1, le=64, description="Look-ups in flight per operator during pre-flight."
    )
    lookup_unavailable: tuple[Literal["flooz", "tmoney"], ...] = Field(
        default=(),
        description="Operators whose look-up this merchant account cannot use (JSON list);"
        " only their lines may skip pre-flight (`--no-preflight`).",
    )
    flooz_url: str | None = None
    flooz_username: str | None = None
    flooz_password: SecretStr | None = None
    flooz_key: SecretStr | None = None
    flooz_msisdn: str | None = Field(
        default=None,
        pattern=r"^228\d{8}$",
        description="The Flooz merchant wallet's number (228XXXXXXXX), sent with getBalance.",
    )
    flooz_dialect: Literal["clients", "model"] = Field(
        default="clients", description="Which variant of the TLC wire Sika writes."
    )
    tmoney_dialect: Literal["clients", "model"] = Field(
        default="clients", description="Which variant of the T-Money wire Sika writes."
    )
    tmoney_url: str | None = None
    tmoney_username: str | None = None
    tmoney_password: SecretStr | None = None
    sms_url: str | None = None

    environment: Literal["production", "test"] = Field(
        default="production",
        description="`test` allows the test hooks below; any other run refuses them.",
    )
    crash_point: Literal["claimed", "executed", "answered", "recorded"] | None = Field(
        default=None,
        description="Test hook: a worker SIGKILLs itself at this moment of a payout's send.",
    )
    crash_once: Path | None = Field(
        default=None,
        description="Test hook: the crash happens only in the process that creates this file.",
    )
    clock_offset: float = Field(
        default=0.0,
        description="Test hook: seconds added to the wall clock wherever Sika reads the time.",
    )

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str | None) -> str | None:
        if value and not value.startswith(("amqp://", "amqps://", "redis://", "rediss://")):
            raise ValueError("must start with amqp:// (RabbitMQ) or redis:// (Redis)")
        return value or None

    @field_validator("database_url", "database_owner_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("postgresql", "postgres://")):
            raise ValueError("must be a PostgreSQL URL (postgresql://...)")
        return value

    @field_validator("pii_keys", "blind_index_key")
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        # the format itself is checked by core.crypto when keys are first loaded
        if value is None or not value.get_secret_value().strip():
            return None
        return value

    @field_validator("agent_key", mode="before")
    @classmethod
    def _blank_key_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _test_hooks_only_in_tests(self) -> Settings:
        hooks = {
            "SIKA_CRASH_POINT": self.crash_point is not None,
            "SIKA_CRASH_ONCE": self.crash_once is not None,
            "SIKA_CLOCK_OFFSET": self.clock_offset != 0,
        }
        named = [name for name, on in hooks.items() if on]
        if named and self.environment != "test":
            raise ValueError(
                f"{', '.join(named)}: a test hook, refused unless SIKA_ENVIRONMENT=test"
            )
        return self

    @property
    def keys_path(self) -> Path:
        """`keys_dir` made absolute; not created here, since only keygen writes to it."""
        return self.keys_dir.expanduser().resolve()

    @property
    def home_dir(self) -> Path:
        """`home` made absolute and created on first use."""
        path = self.home.expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """The process's settings; a malformed variable becomes one `ConfigError`."""
    try:
        return Settings()
    except ValueError as exc:
        errors = getattr(exc, "errors", lambda: [])()
        if errors:
            first = errors[0]
            message = str(first["msg"]).removeprefix("Value error, ")
            if not first.get("loc"):  # a rule across settings names its variables itself
                raise ConfigError(message) from exc
            name = "SIKA_" + str(first["loc"][0]).upper()
            raise ConfigError(f"{name}: {message}") from exc
        raise ConfigError(str(exc)) from exc
