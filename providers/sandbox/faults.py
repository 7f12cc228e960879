"""Fault profiles of the sandbox: what can go wrong, how often, reproducible from the seed.

Each operator request draws its faults from `random.Random(f"{seed}|{key}|{attempt}")`,
where `key` names the request (operator, operation, Sika's reference) and `attempt`
counts earlier requests with that key. The same seed and the same requests therefore
meet the same faults, whatever the order or concurrency of other requests.

Knobs (a profile is a JSON object of these; missing keys take the `none` value):

- `latency_ms` [min, max]: delay before every operator answer (uniform).
- `error_before_rate`: HTTP 503 before execution (nothing moved).
- `error_after_rate`: executed, then HTTP 500 (Flooz: soap:Fault soap:Server; T-Money:
  `{"code": "500"}`): the money moved although the answer says error.
- `timeout_after_rate`: executed, then the answer is held `hang_seconds` (the server's
  `--hang-seconds`) so the client times out first.
- `pending_rate`, `pending_seconds` [min, max]: the transaction stays pending (Flooz
  status 100, T-Money EN_COURS) and resolves after that many sandbox-clock seconds.
- `callback_drop_rate`: the final-outcome callback is never sent.
- `callback_duplicate_rate`: it is sent twice.
- `callback_delay_rate`, `callback_delay_seconds` [min, max]: it is sent late (which also
  reorders callbacks: a delayed one arrives after later ones).
- `fee_fixed`, `fee_bps`: the operator's fee on each payout, `fee_fixed + amount *
  fee_bps // 10000` francs, debited from the merchant float on top of the amount and
  shown in the statement's fee column (not a fault: lets reconciliation meet fees).

Presets: `none` (all zero: deterministic and immediate), `flaky` (latency 10-80 ms,
2 % errors before, 2 % after, 1 % timeouts, 5 % pending for 1-4 s, callbacks 5 % dropped,
5 % duplicated, 10 % delayed 0.2-2 s) and `hostile` (latency 20-200 ms, 10 % errors
before, 8 % after, 5 % timeouts, 15 % pending for 2-10 s, callbacks 25 % dropped, 20 %
duplicated, 30 % delayed 0.5-5 s). A JSON file path given to `--faults` holds a profile
object, optionally with `"base": "flaky"` to start from a preset.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from core.errors import ValidationError


class FaultProfileError(ValidationError):
    """A fault profile that names no preset, file or valid set of knobs."""


@dataclass(frozen=True)
class FaultProfile:
    """How often each fault happens; see the module docstring for each knob."""

    name: str = "none"
    latency_ms: tuple[int, int] = (0, 0)
    error_before_rate: float = 0.0
    error_after_rate: float = 0.0
    timeout_after_rate: float = 0.0
    pending_rate: float = 0.0
    pending_seconds: tuple[float, float] = (0.0, 0.0)
    callback_drop_rate: float = 0.0
    callback_duplicate_rate: float = 0.0
    callback_delay_rate: float = 0.0
    callback_delay_seconds: tuple[float, float] = (0.0, 0.0)
    fee_fixed: int = 0
    fee_bps: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The profile as JSON-ready data."""
        return {
            key: list(value) if isinstance(value, tuple) else value
            for key, value in asdict(self).items()
        }

    def fee(self, amount: int) -> int:
        """The operator's fee on a payout of `amount` francs."""
        return self.fee_fixed + amount * self.fee_bps // 10_000


PRESETS: dict[str, FaultProfile] = {
    "none": FaultProfile(),
    "flaky": FaultProfile(
        name="flaky",
        latency_ms=(10, 80),
        error_before_rate=0.02,
        error_after_rate=0.02,
        timeout_after_rate=0.01,
        pending_rate=0.05,
        pending_seconds=(1.0, 4.0),
        callback_drop_rate=0.05,
        callback_duplicate_rate=0.05,
        callback_delay_rate=0.10,
        callback_delay_seconds=(0.2, 2.0),
    ),
    "hostile": FaultProfile(
        name="hostile",
        latency_ms=(20, 200),
        error_before_rate=0.10,
        error_after_rate=0.08,
        timeout_after_rate=0.05,
        pending_rate=0.15,
        pending_seconds=(2.0, 10.0),
        callback_drop_rate=0.25,
        callback_duplicate_rate=0.20,
        callback_delay_rate=0.30,
        callback_delay_seconds=(0.5, 5.0),
    ),
}

_RATES = {f.name for f in fields(FaultProfile) if f.name.endswith("_rate")}
_RANGES = {"latency_ms", "pending_seconds", "callback_delay_seconds"}
_INTS = {"fee_fixed", "fee_bps"}


def load_profile(spec: str | dict[str, Any]) -> FaultProfile:
    """A preset name, a JSON file path, or a profile object → a validated `FaultProfile`."""
    if isinstance(spec, str):
        if spec in PRESETS:
            return PRESETS[spec]
        path = Path(spec)
        if not path.is_file():
            raise FaultProfileError(
                f"fault profile {spec!r} is neither a preset ({', '.join(PRESETS)}) nor a file"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FaultProfileError(f"cannot read fault profile {spec}: {exc}") from exc
        if not isinstance(data, dict):
            raise FaultProfileError(f"fault profile {spec} is not a JSON object")
        return _from_dict(data, default_name=path.stem)
    return _from_dict(spec, default_name="custom")


def _from_dict(data: dict[str, Any], default_name: str) -> FaultProfile:
    data = dict(data)
    base_name = data.pop("base", "none")
    if base_name not in PRESETS:
        raise FaultProfileError(f"unknown base profile {base_name!r}")
    known = {f.name for f in fields(FaultProfile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise FaultProfileError(f"unknown fault profile keys: {', '.join(unknown)}")
    values: dict[str, Any] = {"name": str(data.pop("name", default_name))}
    for key, value in data.items():
        values[key] = _check(key, value)
    return replace(PRESETS[base_name], **values)


def _check(key: str, value: Any) -> Any:
    if key in _RATES:
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
            raise FaultProfileError(f"{key} must be a number between 0 and 1")
        return float(value)
    if key in _RANGES:
        ok = (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1]
        )
        if not ok:
            raise FaultProfileError(f"{key} must be [min, max] with 0 <= min <= max")
        return (value[0], value[1])
    if key in _INTS:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise FaultProfileError(f"{key} must be a non-negative integer")
        return value
    raise FaultProfileError(f"unknown fault profile key {key}")


@dataclass(frozen=True)
class Decision:
    """The faults one request meets, drawn before it is handled."""

    latency: float = 0.0
    error_before: bool = False
    pending_seconds: float | None = None
    error_after: bool = False
    timeout_after: bool = False
    callback_delays: tuple[float, ...] = (0.0,)


class Faults:
    """Draws each request's `Decision` from the profile and the run's seed."""

    def __init__(self, profile: FaultProfile, seed: int) -> None:
        self.profile = profile
        self.seed = seed
        self._attempts: dict[str, int] = {}

    def decide(self, key: str) -> Decision:
        """The faults for the next request named `key` (same seed, same key → same draw)."""
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        p = self.profile
        rng = random.Random(f"{self.seed}|{key}|{attempt}")
        # every draw happens whatever the rates, so one knob never shifts another's dice
        latency = rng.uniform(*p.latency_ms) / 1000
        error_before = rng.random() < p.error_before_rate
        pending = rng.random() < p.pending_rate
        pending_for = rng.uniform(*p.pending_seconds)
        error_after = rng.random() < p.error_after_rate
        timeout_after = rng.random() < p.timeout_after_rate
        drop = rng.random() < p.callback_drop_rate
        duplicate = rng.random() < p.callback_duplicate_rate
        delayed = rng.random() < p.callback_delay_rate
        delay = rng.uniform(*p.callback_delay_seconds) if delayed else 0.0
        second_delay = delay + rng.uniform(0.05, 0.5)
        delays: tuple[float, ...] = ()
        if not drop:
            delays = (delay, second_delay) if duplicate else (delay,)
        return Decision(
            latency=latency,
            error_before=error_before,
            pending_seconds=pending_for if pending else None,
            error_after=error_after and not timeout_after,
            timeout_after=timeout_after,
            callback_delays=delays,
        )
