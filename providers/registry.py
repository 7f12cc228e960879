"""Finding adapters: the `sika.providers` entry-point group, so a third operator plugs in
without editing Sika. Flooz and T-Money are registered by Sika's own pyproject.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from core.errors import ProviderError
from core.settings import Settings
from providers.base import ProviderAdapter

GROUP = "sika.providers"


def _entry_points() -> dict[str, EntryPoint]:
    # Read on each call, not cached at import: a plugin installed later is seen at once.
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    """Names of every installed adapter, sorted."""
    return sorted(_entry_points())


def adapter_class(name: str) -> Any:
    """The object an adapter's entry point names (a class with `from_settings`)."""
    points = _entry_points()
    if name not in points:
        raise ProviderError(
            f"no provider adapter named {name!r} (installed: {', '.join(sorted(points)) or 'none'})"
        )
    try:
        return points[name].load()
    except Exception as exc:  # a broken plugin must not look like a missing one
        raise ProviderError(f"provider adapter {name!r} failed to load: {exc}") from exc


def load_adapter(name: str, settings: Settings, **options: Any) -> ProviderAdapter:
    """Build adapter `name` from `settings`; `options` (timeouts, transport) go to it."""
    factory = adapter_class(name)
    build = getattr(factory, "from_settings", None)
    adapter = build(settings, **options) if callable(build) else factory(settings, **options)
    if not isinstance(adapter, ProviderAdapter):
        raise ProviderError(f"provider adapter {name!r} does not implement the provider contract")
    return adapter
