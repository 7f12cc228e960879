"""Where each operator lives and how Sika signs in, read from `core.settings.Settings`.

`SIKA_SANDBOX_URL` alone points all three services at a sandbox with its default
credentials; an explicit `SIKA_FLOOZ_*` / `SIKA_TMONEY_*` / `SIKA_SMS_URL` wins over it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import ConfigError
from core.settings import Settings

# The key the public TLC client libraries ship with; the sandbox uses it too.
TLC_DEFAULT_KEY = "tlc12345tlc12345tlc12345tlc12345"
SANDBOX_USERNAME = "sika"
SANDBOX_PASSWORD = "sika"  # noqa: S105 - the sandbox's documented default, not a secret
# The sandbox's Flooz merchant wallet (its statements' payer), which getBalance names.
SANDBOX_FLOOZ_MSISDN = "22899999999"


@dataclass(frozen=True)
class Credentials:
    """Base URL and sign-in of one operator (repr hides the secrets)."""

    base_url: str
    username: str
    password: str
    key: str = ""
    msisdn: str = ""

    def __repr__(self) -> str:
        return f"Credentials(base_url={self.base_url!r}, username={self.username!r}, ...)"


def _sandbox(settings: Settings, path: str) -> str | None:
    return f"{settings.sandbox_url.rstrip('/')}/{path}" if settings.sandbox_url else None


def _need(value: str | None, variable: str, what: str) -> str:
    if not value:
        raise ConfigError(f"{variable} is not set: Sika needs {what} (or set SIKA_SANDBOX_URL).")
    return value


def flooz_credentials(settings: Settings) -> Credentials:
    """Flooz base URL, merchant username, password and the AES key of its token."""
    sandbox = settings.flooz_url is None and settings.sandbox_url is not None
    base = settings.flooz_url or _sandbox(settings, "flooz")
    username = settings.flooz_username or (SANDBOX_USERNAME if sandbox else None)
    password = (
        settings.flooz_password.get_secret_value() if settings.flooz_password else None
    ) or (SANDBOX_PASSWORD if sandbox else None)
    key = settings.flooz_key.get_secret_value() if settings.flooz_key else TLC_DEFAULT_KEY
    if len(key.encode()) != 32:
        raise ConfigError("SIKA_FLOOZ_KEY must be exactly 32 bytes (an AES-256 key).")
    msisdn = settings.flooz_msisdn or (SANDBOX_FLOOZ_MSISDN if sandbox else "")
    return Credentials(
        _need(base, "SIKA_FLOOZ_URL", "the Flooz merchant API address"),
        _need(username, "SIKA_FLOOZ_USERNAME", "the Flooz merchant username"),
        _need(password, "SIKA_FLOOZ_PASSWORD", "the Flooz merchant password"),
        key,
        msisdn,
    )


def tmoney_credentials(settings: Settings) -> Credentials:
    """T-Money gateway base URL, partner username and password."""
    sandbox = settings.tmoney_url is None and settings.sandbox_url is not None
    base = settings.tmoney_url or _sandbox(settings, "tmoney")
    username = settings.tmoney_username or (SANDBOX_USERNAME if sandbox else None)
    password = (
        settings.tmoney_password.get_secret_value() if settings.tmoney_password else None
    ) or (SANDBOX_PASSWORD if sandbox else None)
    return Credentials(
        _need(base, "SIKA_TMONEY_URL", "the T-Money gateway address"),
        _need(username, "SIKA_TMONEY_USERNAME", "the T-Money partner username"),
        _need(password, "SIKA_TMONEY_PASSWORD", "the T-Money partner password"),
    )


def sms_url(settings: Settings) -> str:
    """The SMS gateway's send endpoint."""
    url = settings.sms_url or _sandbox(settings, "sms/send")
    return _need(url, "SIKA_SMS_URL", "the SMS gateway address")
