"""Adapters are found through the `sika.providers` entry-point group, including a third
operator installed as its own distribution, without editing Sika.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import ConfigError, ProviderError
from core.settings import Settings
from providers import registry
from providers.base import ProviderAdapter
from providers.flooz import FloozAdapter
from providers.tmoney import TMoneyAdapter

TESTS = Path(__file__).resolve().parents[1]


def test_sika_registers_flooz_and_tmoney() -> None:
    assert {"flooz", "tmoney"} <= set(registry.available())
    adapter = registry.load_adapter("flooz", Settings(sandbox_url="http://127.0.0.1:9"))
    assert isinstance(adapter, FloozAdapter)
    assert isinstance(adapter, ProviderAdapter)
    adapter.close()
    assert isinstance(
        registry.load_adapter("tmoney", Settings(sandbox_url="http://127.0.0.1:9")),
        TMoneyAdapter,
    )


def test_unknown_adapter_is_one_clear_error() -> None:
    with pytest.raises(ProviderError, match="no provider adapter named 'mtn'"):
        registry.load_adapter("mtn", Settings())


@pytest.mark.parametrize(
    ("name", "variable"),
    [("flooz", "SIKA_FLOOZ_URL"), ("tmoney", "SIKA_TMONEY_URL")],
)
def test_missing_configuration_names_the_variable(
    name: str, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("SIKA_"):
            monkeypatch.delenv(key)
    with pytest.raises(ConfigError, match=variable):
        registry.load_adapter(name, Settings(_env_file=None))


def test_explicit_url_without_password_names_the_password() -> None:
    settings = Settings(flooz_url="http://x", flooz_username="u")
    with pytest.raises(ConfigError, match="SIKA_FLOOZ_PASSWORD"):
        registry.load_adapter("flooz", settings)


def _install_wave(site: Path) -> None:
    """What pip would leave behind for a `sika-wave` distribution."""
    dist = site / "sika_wave-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sika-wave\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sika.providers]\nwave = sika_wave:WaveAdapter\n")


def test_a_third_adapter_plugs_in_through_the_entry_point_group(tmp_path: Path) -> None:
    # Given a separately installed distribution declaring a `wave` adapter
    site = tmp_path / "site"
    _install_wave(site)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIKA_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS / "plugins")])
    env["SIKA_SANDBOX_URL"] = "http://127.0.0.1:9"
    env["SIKA_HOME"] = str(tmp_path / "home")
    # When Sika's registry is asked, in a fresh interpreter
    code = (
        "import json; from core.settings import Settings; from providers import registry;"
        "a = registry.load_adapter('wave', Settings());"
        "t = a.transaction_status('W-1'); m = a.transaction_status('X-9');"
        "print(json.dumps({'available': registry.available(), 'balance': a.balance().balance,"
        " 'status': [t.outcome, t.reference, m.found]}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Then it finds wave next to flooz and tmoney, and uses it
    answer = json.loads(proc.stdout)
    assert answer == {
        "available": ["flooz", "tmoney", "wave"],
        "balance": 1234,
        "status": ["succeeded", "WAVE-MERCHANT", False],
    }
    # And so does the `sika` command (flooz and tmoney are unreachable here: exit 1)
    sika = str(Path(sys.executable).parent / "sika")
    proc = subprocess.run(
        [sika, "providers", "balance", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows = {row["provider"]: row for row in json.loads(proc.stdout)}
    assert rows["wave"]["balance"] == 1234
    assert rows["wave"]["outcome"] == "succeeded"
    assert rows["flooz"]["outcome"] == "unknown"
