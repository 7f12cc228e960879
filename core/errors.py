"""The one error root Sika raises on purpose, and its families.

A `SikaError` reaching the CLI is a refusal or a user mistake: it is printed as one
sentence on stderr and ends the command with `exit_code`, never with a traceback.
"""

from __future__ import annotations


class SikaError(Exception):
    """Root of every error Sika raises on purpose."""

    exit_code: int = 1


class ConfigError(SikaError):
    """A setting is missing, malformed or contradicts another."""


class ValidationError(SikaError):
    """Input that Sika refuses: a bad row, field, amount or argument."""


class NotFoundError(SikaError):
    """A named thing (account, batch, farmer, agent...) does not exist."""


class AuthorizationError(SikaError):
    """The acting agent lacks the role, or a signature does not verify."""


class LedgerError(SikaError):
    """The ledger refused an operation or found its invariants broken."""


class ProviderError(SikaError):
    """An operator adapter could not be built or reached as configured."""


class FindingsError(SikaError):
    """A check ran and found problems (breaks, broken seals): exit 3."""

    exit_code = 3
