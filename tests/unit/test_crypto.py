"""Personal-data encryption and the blind index: round trip, rotation, tampering, keys."""

from __future__ import annotations

import base64
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.crypto import (
    BlindIndex,
    DecryptionError,
    Keyring,
    add_dev_key_version,
    generate_key,
    load_keys,
)
from core.errors import ConfigError
from core.settings import Settings

RING = Keyring({1: os.urandom(32)})


@given(st.text(max_size=200), st.sampled_from(["farmers.phone", "farmers.last_name"]))
def test_round_trip_property(plain: str, context: str) -> None:
    assert RING.decrypt(RING.encrypt(plain, context), context) == plain


def test_ciphertext_carries_version_and_random_nonce() -> None:
    # Given one plaintext encrypted twice
    a, b = RING.encrypt("22890123456", "farmers.phone"), RING.encrypt("22890123456", "c")
    # Then both say their version and differ (fresh nonce), and hold no plaintext
    assert a.startswith(b"v1:")
    assert b.startswith(b"v1:")
    assert a != RING.encrypt("22890123456", "farmers.phone")
    assert b"22890123456" not in a


def test_rotation_old_values_decrypt_and_reencrypt_moves_them() -> None:
    # Given a value under key 1, then a keyring with keys 1 and 2
    old = RING.encrypt("Mensah", "farmers.last_name")
    rotated = Keyring({**RING.keys, 2: os.urandom(32)})
    # Then the old value still decrypts, new ones use version 2
    assert rotated.decrypt(old, "farmers.last_name") == "Mensah"
    assert rotated.encrypt("x", "c").startswith(b"v2:")
    # When re-encrypted it moves to version 2, and key 1 can be retired
    moved = rotated.reencrypt(old, "farmers.last_name")
    assert rotated.version_of(moved) == 2
    assert Keyring({2: rotated.keys[2]}).decrypt(moved, "farmers.last_name") == "Mensah"
    with pytest.raises(DecryptionError):
        Keyring({2: rotated.keys[2]}).decrypt(old, "farmers.last_name")


def test_tampering_and_wrong_column_are_refused() -> None:
    token = bytearray(RING.encrypt("22890123456", "farmers.phone"))
    with pytest.raises(DecryptionError):
        RING.decrypt(bytes(token), "farmers.first_name")
    token[-1] ^= 1
    with pytest.raises(DecryptionError):
        RING.decrypt(bytes(token), "farmers.phone")
    with pytest.raises(DecryptionError):
        RING.decrypt(b"garbage", "farmers.phone")


def test_blind_index_is_stable_keyed_and_contextual() -> None:
    key = os.urandom(32)
    index = BlindIndex(key)
    assert index.digest("TG-1", "n") == BlindIndex(key).digest("TG-1", "n")
    assert len(index.digest("TG-1", "n")) == 32
    assert index.digest("TG-1", "n") != BlindIndex(os.urandom(32)).digest("TG-1", "n")
    assert index.digest("TG-1", "n") != index.digest("TG-1", "p")


def test_keys_from_environment_and_malformed_spec() -> None:
    spec = f"1:{generate_key()}, 2:{generate_key()}"
    assert Keyring.parse(spec).current == 2
    with pytest.raises(ConfigError):
        Keyring.parse("1:" + base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError):
        Keyring.parse("nonsense")
    assert repr(Keyring.parse(spec)) == "Keyring(versions=[1, 2])"


def test_development_keys_generated_once_with_mode_0600(tmp_path) -> None:
    settings = Settings(home=tmp_path)
    first = load_keys(settings)
    second = load_keys(settings)
    assert first.keyring.keys == second.keyring.keys
    for name in ("pii.keys", "blind_index.key"):
        assert stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode) == 0o600
    assert add_dev_key_version(tmp_path) == 2
    assert load_keys(settings).keyring.current == 2
