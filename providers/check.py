"""The go-live check of one operator: a few harmless calls against the configured endpoint,
each turned into one row that says whether it passed and, when it did not, the most likely
cause (wrong key, refused credentials, wrong URL, a firewall, wrong dialect).

Nothing here moves money: sign-in, balance, a KYC look-up and status queries of a reference
that cannot exist. `check_operator` is a plain function; `sika providers check` prints it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

from core.errors import ValidationError
from core.settings import Settings
from providers import config, registry
from providers.base import AccountStatus, Outcome, ProviderAdapter, Reason, TransactionResult
from providers.dialects import Dialect
from providers.msisdn import InvalidMsisdn, Operator, default_operator, mask, mask_text, normalise
from providers.tmoney import SignInRefused, TMoneyAdapter

SIGN_IN = "sign_in"
BALANCE = "balance"
LOOKUP = "lookup"
STATUS_UNKNOWN_REFERENCE = "status_unknown_reference"
COLLECTION_STATUS_UNKNOWN_REFERENCE = "collection_status_unknown_reference"

# Prefix of the probe references. A random tail makes each run's reference new, so "does
# not exist" is the only right answer and a re-run never finds an earlier probe.
PROBE_PREFIX = "SIKACHECK-"

# Operator answers and adapter details are shown to whoever runs the check: any wallet
# number in them is masked like everywhere else on screen.
_HTTP_STATUS = re.compile(r"\bHTTP (\d{3})\b")
_RAW_LIMIT = 200


@dataclass(frozen=True)
class Step:
    """One row of the check: `detail` says what was seen, or what failed and why."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """Every step of one operator's check, in the order they ran."""

    operator: str
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        """True when every step passed."""
        return all(step.ok for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        """`{"operator", "ok", "steps": [{"name", "ok", "detail"}]}`, as `--json` prints it."""
        return {
            "operator": self.operator,
            "ok": self.ok,
            "steps": [{"name": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
        }


def probe_reference() -> str:
    """A reference no transaction can carry: Sika never issues the `SIKACHECK-` prefix."""
    return PROBE_PREFIX + secrets.token_hex(8)


@dataclass(frozen=True)
class _Failure:
    """A failed call, as the adapter reported it."""

    reason: Reason | None
    detail: str
    code: str | None = None


@dataclass(frozen=True)
class _Outcome:
    """A step's row, and whether the steps after it are pointless (or harmful) to run."""

    step: Step
    halt: bool = False


class _Checker:
    """Runs the steps against one adapter and words the failures."""

    def __init__(self, operator: Operator, settings: Settings, adapter: ProviderAdapter) -> None:
        self.operator = operator
        self.settings = settings
        self.adapter = adapter
        self.prefix = f"SIKA_{operator.upper()}_"

    # -- the steps -----------------------------------------------------------------

    def sign_in(self) -> _Outcome:
        # Only T-Money signs in, and `sign_in` is its own, not the provider Protocol's.
        tmoney = cast(TMoneyAdapter, self.adapter)
        try:
            tmoney.sign_in()
        except SignInRefused as exc:
            # Every later call signs in again first: repeating a refused password risks
            # locking the partner account, so the check stops here.
            return self._failed(SIGN_IN, _Failure(exc.reason, exc.detail), halt=True)
        return _Outcome(Step(SIGN_IN, True, "signed in: the gateway issued a token"))

    def balance(self) -> _Outcome:
        result = self.adapter.balance()
        if result.outcome is Outcome.SUCCEEDED and result.balance is not None:
            return _Outcome(Step(BALANCE, True, f"merchant float: {_francs(result.balance)}"))
        failure = _Failure(result.reason, result.detail)
        return self._failed(BALANCE, failure, halt=self._hopeless(failure))

    def lookup(self, msisdn: str) -> _Outcome:
        result = self.adapter.lookup(msisdn)
        if result.outcome is not Outcome.SUCCEEDED:
            failure = _Failure(result.reason, result.detail)
            return self._failed(LOOKUP, failure, halt=self._hopeless(failure))
        detail = f"{mask(msisdn)}: {str(result.status).replace('_', ' ')}"
        if result.name:
            detail += f", {result.name}"
        if result.status is AccountStatus.NOT_REGISTERED:
            detail += self._other_operator_hint(msisdn)
        # The look-up answered: that is what the check is about, whatever the wallet's state.
        return _Outcome(Step(LOOKUP, True, detail))

    def payout_status(self) -> _Outcome:
        reference = probe_reference()
        result = self.adapter.payout_status(reference)
        return self._not_found(STATUS_UNKNOWN_REFERENCE, reference, result, "status query")

    def collection_status(self) -> _Outcome:
        reference = probe_reference()
        result = self.adapter.collection_status(reference)
        return self._not_found(
            COLLECTION_STATUS_UNKNOWN_REFERENCE, reference, result, "collection status query"
        )

    def _not_found(
        self, name: str, reference: str, result: TransactionResult, what: str
    ) -> _Outcome:
        if not result.found or result.reason is Reason.NOT_FOUND:
            return _Outcome(Step(name, True, f"{reference}: does not exist, as expected"))
        if result.outcome is Outcome.UNKNOWN or result.reason is Reason.CREDENTIALS_REJECTED:
            failure = _Failure(result.reason, result.detail, result.operator_code)
            return self._failed(name, failure, halt=self._hopeless(failure))
        # A definite answer about a reference nobody ever used: the operator read the query
        # as something else, which is what a query in the other dialect looks like.
        code = f" (code {result.operator_code})" if result.operator_code else ""
        hint = (
            f"the {what} of a reference that cannot exist answered "
            f'{result.outcome}{code} instead of "does not exist": {self._dialect_hint()}'
        )
        return _Outcome(Step(name, False, _with_raw(hint, result.detail)))

    # -- failures ------------------------------------------------------------------

    def _failed(self, name: str, failure: _Failure, *, halt: bool) -> _Outcome:
        hint = self.explain(name, failure)
        return _Outcome(Step(name, False, _with_raw(hint, failure.detail)), halt)

    def _hopeless(self, failure: _Failure) -> bool:
        """Refused credentials or no connection: every later step would fail the same way."""
        return self._refused(failure) or self._not_connected(failure)

    def _refused(self, failure: _Failure) -> bool:
        # TLC answers 98 to a status query too, where the adapter records it as a refused
        # query rather than a refused credential.
        return failure.reason is Reason.CREDENTIALS_REJECTED or (
            self.operator is Operator.FLOOZ and failure.code == "98"
        )

    @staticmethod
    def _not_connected(failure: _Failure) -> bool:
        # providers.http words a request that never left "not sent: ...".
        return failure.reason is Reason.UNREACHABLE or "not sent:" in failure.detail

    def explain(self, step: str, failure: _Failure) -> str:
        """The most likely cause of a failed call in `step`, naming the setting to look at."""
        detail = failure.detail
        if "is not set" in detail:
            # The adapter refused to send for want of a setting: nothing reached the operator.
            return "a setting Sika needs for this call is missing"
        if self._refused(failure):
            return self._credentials_hint()
        if self._not_connected(failure):
            return self._connection_hint(detail)
        if failure.reason is Reason.NO_ANSWER:
            if "exceeds" in detail or "longer than" in detail:
                return (
                    "the answer is far larger than an operator's: wrong URL "
                    f"({self._url_variable()}), something else answers there"
                )
            return (
                "the request left but no answer came back in time: a firewall or proxy "
                "that lets requests out and drops answers, or a slow gateway "
                "(SIKA_OPERATOR_TIMEOUT)"
            )
        status = _HTTP_STATUS.search(detail)
        if status:
            return self._http_hint(step, int(status.group(1)))
        if "SOAP fault" in detail:
            if "Client" in detail:
                return f"the operator refused the request's shape: {self._dialect_hint()}"
            return "the operator's server failed the request: trouble at the operator, retry later"
        if failure.reason is Reason.MALFORMED_ANSWER:
            # Adapters read every dialect's answers, so an unreadable one points at the URL.
            return (
                "the answer is not the operator's API: wrong URL "
                f"({self._url_variable()}: a web page or proxy answers there)"
            )
        if failure.reason is Reason.UNMAPPED_CODE:
            return f"an answer code Sika does not know: {self._dialect_hint()}"
        if failure.reason is Reason.INVALID_REQUEST or failure.code == "91":
            hint = f"the operator found the request incomplete: {self._dialect_hint()}"
            if self.operator is Operator.FLOOZ and self._dialect() is Dialect.CLIENTS:
                hint += " (in clients, getBalance sends SIKA_FLOOZ_MSISDN: the merchant wallet)"
            return hint
        if failure.reason is Reason.NOT_ALLOWED:
            return "the merchant account may not use this operation: ask the operator to enable it"
        if failure.reason is Reason.OPERATOR_ERROR:
            return "the operator reported an error of its own: retry later, or a wrong dialect"
        return f"failed ({failure.reason or 'no reason given'})"

    def _credentials_hint(self) -> str:
        if self.operator is Operator.FLOOZ:
            return (
                "refused credentials: wrong SIKA_FLOOZ_KEY, or wrong SIKA_FLOOZ_USERNAME / "
                "SIKA_FLOOZ_PASSWORD (TLC answers 98 to both)"
            )
        return "refused credentials: wrong SIKA_TMONEY_USERNAME or SIKA_TMONEY_PASSWORD"

    def _connection_hint(self, detail: str) -> str:
        url, variable = self._url(), self._url_variable()
        lowered = detail.lower()
        if any(
            marker in lowered
            for marker in (
                "name or service not known",
                "nodename nor servname",
                "getaddrinfo",
                "name resolution",
                "no address associated",
            )
        ):
            return f"the host of {url} does not resolve: wrong URL ({variable})"
        if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
            return (
                f"the TLS handshake with {url} failed: wrong URL scheme or port "
                f"({variable}), or a proxy intercepting TLS"
            )
        if "refused" in lowered:
            return (
                f"nothing accepts connections at {url}: wrong URL or port ({variable}), the "
                "gateway is down, or a firewall rejects this server"
            )
        if "timeout" in lowered or "timed out" in lowered:
            return (
                f"the connection to {url} got no reply: a firewall drops this server's traffic "
                f"(is its address whitelisted by the operator?) or wrong URL ({variable})"
            )
        return f"could not connect to {url}: wrong URL ({variable}) or a firewall"

    def _http_hint(self, step: str, status: int) -> str:
        variable = self._url_variable()
        if status == 404:
            hint = f"the gateway has no such path (HTTP 404): wrong URL ({variable} must be the "
            if step == COLLECTION_STATUS_UNKNOWN_REFERENCE:
                # The one call whose path differs between the dialects: in `clients` a push
                # debit's status has a route of its own, which older gateways do not serve.
                return f"{hint}API's base address) or {self._dialect_hint()}"
            return f"{hint}API's base address, with its path)"
        if status in (401, 403):
            if self.operator is Operator.TMONEY:
                return (
                    f"the gateway refused Sika's token after a fresh sign-in (HTTP {status}): "
                    f"the account lacks rights on this API, or {self._dialect_hint()}"
                )
            return (
                f"refused before reaching the API (HTTP {status}): an IP filter or firewall "
                f"in front of it, or wrong URL ({variable})"
            )
        if status in (405, 415):
            return f"the gateway refused the request (HTTP {status}): {self._dialect_hint()}"
        if status in (502, 503, 504):
            return (
                f"a proxy answered that the gateway behind it is unavailable (HTTP {status}): "
                "retry later, or a firewall between the proxy and the gateway"
            )
        if status >= 500:
            return (
                f"the gateway failed the request (HTTP {status}): {self._dialect_hint()}, "
                "or trouble at the operator"
            )
        return f"unexpected HTTP {status}: wrong URL ({variable}) or {self._dialect_hint()}"

    # -- settings named in the hints ------------------------------------------------

    def _dialect(self) -> Dialect:
        return Dialect(getattr(self.settings, f"{self.operator}_dialect", Dialect.CLIENTS))

    def _dialect_hint(self) -> str:
        current = self._dialect()
        other = next(d for d in Dialect if d is not current)
        return f"wrong dialect ({self.prefix}DIALECT is {current}; try {other})"

    def _url_variable(self) -> str:
        explicit = getattr(self.settings, f"{self.operator}_url", None)
        return (
            f"{self.prefix}URL" if explicit or not self.settings.sandbox_url else "SIKA_SANDBOX_URL"
        )

    def _url(self) -> str:
        credentials = (
            config.flooz_credentials
            if self.operator is Operator.FLOOZ
            else config.tmoney_credentials
        )
        return _without_userinfo(credentials(self.settings).base_url)

    def _other_operator_hint(self, msisdn: str) -> str:
        try:
            usual = default_operator(msisdn)
        except InvalidMsisdn:
            return ""
        if usual is self.operator:
            return ""
        return f" (its prefix is {usual}'s: was a {usual} number meant?)"


def _francs(amount: int) -> str:
    return f"{amount:,} francs".replace(",", " ")


def _with_raw(hint: str, raw: str) -> str:
    """The hint, then what the adapter saw, shortened and with wallet numbers masked."""
    raw = mask_text(" ".join(raw.split()))
    if len(raw) > _RAW_LIMIT:
        raw = raw[: _RAW_LIMIT - 1] + "…"
    return f"{hint} — {raw}" if raw else hint


def _without_userinfo(url: str) -> str:
    # A URL may carry user:password@; the check prints the address, never a secret.
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def parse_operator(operator: str) -> Operator:
    """`flooz` or `tmoney` (any case); `ValidationError` naming both otherwise."""
    try:
        return Operator(operator.strip().lower())
    except ValueError:
        choices = " or ".join(o.value for o in Operator)
        raise ValidationError(f"unknown operator {operator!r}: choose {choices}") from None


def check_operator(operator: str, settings: Settings, msisdn: str | None = None) -> CheckReport:
    """Run the go-live check of `operator` against its configured endpoint.

    Steps, in order: `sign_in` (T-Money only), `balance`, `lookup` (only with `msisdn`),
    `status_unknown_reference`, and for T-Money `collection_status_unknown_reference`.
    Argument mistakes raise `ValidationError` before any call; a missing setting raises
    `ConfigError`. Whatever the operator answers, or fails to, becomes a step row.
    """
    name = parse_operator(operator)
    number = normalise(msisdn) if msisdn is not None else None
    adapter = registry.load_adapter(name, settings, read_timeout=settings.operator_timeout)
    checker = _Checker(name, settings, adapter)
    plan: list[tuple[str, Callable[[], _Outcome]]] = []
    if name is Operator.TMONEY:
        plan.append((SIGN_IN, checker.sign_in))
    plan.append((BALANCE, checker.balance))
    if number is not None:
        plan.append((LOOKUP, lambda: checker.lookup(number)))
    plan.append((STATUS_UNKNOWN_REFERENCE, checker.payout_status))
    if name is Operator.TMONEY:
        plan.append((COLLECTION_STATUS_UNKNOWN_REFERENCE, checker.collection_status))

    steps: list[Step] = []
    halted_by: str | None = None
    try:
        for step_name, run in plan:
            if halted_by is not None:
                steps.append(Step(step_name, False, f"not run: {halted_by} failed first"))
                continue
            try:
                outcome = run()
            except Exception as exc:  # a check reports every failure as a row, never a traceback
                raw = f"{type(exc).__name__}: {exc}"
                outcome = _Outcome(Step(step_name, False, _with_raw("unexpected error", raw)))
            steps.append(outcome.step)
            if outcome.halt:
                halted_by = step_name
    finally:
        adapter.close()
    return CheckReport(operator=str(name), steps=tuple(steps))
