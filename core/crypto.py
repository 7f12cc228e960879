"""Personal data at rest: AES-256-GCM with versioned keys, and a keyed HMAC blind index.

A stored value is `b"v<version>:" + nonce(12) + ciphertext+tag`; the column's name is the
associated data, so a value moved to another column (or row kind) no longer decrypts.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import ConfigError, SikaError
from core.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
_HEADER = re.compile(rb"^v(\d{1,6}):")
_KEY_ENTRY = re.compile(r"^\s*(\d{1,6})\s*:\s*(\S+)\s*$")


class DecryptionError(SikaError):
    """A stored value does not decrypt: wrong key, wrong column, or altered bytes."""


def generate_key() -> str:
    """A new random 256-bit key, base64, for `SIKA_PII_KEYS` or `SIKA_BLIND_INDEX_KEY`."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode("ascii")


def _decode_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what}: not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"{what}: a key must be {KEY_BYTES} bytes, this one has {len(raw)}")
    return raw


@dataclass(frozen=True)
class Keyring:
    """AES-256-GCM keys by version: the newest encrypts, every version decrypts."""

    keys: Mapping[int, bytes]
    _ciphers: dict[int, AESGCM] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigError("the personal-data keyring is empty")
        for version, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ConfigError(f"personal-data key {version} is not {KEY_BYTES} bytes")
            self._ciphers[version] = AESGCM(key)

    def __repr__(self) -> str:
        # never let a key reach a log or a traceback
        return f"Keyring(versions={sorted(self.keys)})"

    @property
    def current(self) -> int:
        """The version new values are encrypted with."""
        return max(self.keys)

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """`"1:<base64>,2:<base64>"` (commas or new lines) → a keyring."""
        keys: dict[int, bytes] = {}
        for entry in filter(None, (part.strip() for part in re.split(r"[,\n]", spec))):
            match = _KEY_ENTRY.match(entry)
            if match is None:
                raise ConfigError('SIKA_PII_KEYS: each entry must read "<version>:<base64 key>"')
            version = int(match.group(1))
            if version in keys:
                raise ConfigError(f"SIKA_PII_KEYS: version {version} appears twice")
            keys[version] = _decode_key(match.group(2), f"SIKA_PII_KEYS version {version}")
        return cls(keys)

    def encrypt(self, plaintext: str, context: str) -> bytes:
        """Encrypt with the current key; `context` (e.g. "farmers.phone") binds the column."""
        return self.encrypt_bytes(plaintext.encode("utf-8"), context)

    def encrypt_bytes(self, plaintext: bytes, context: str) -> bytes:
        """`encrypt` for bytes that need not be text (a callback body as received)."""
        version = self.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[version].encrypt(nonce, plaintext, context.encode())
        return b"v%d:" % version + nonce + sealed

    def decrypt(self, token: bytes, context: str) -> str:
        """The plaintext of `token`; `DecryptionError` when it was altered or moved."""
        return self.decrypt_bytes(token, context).decode("utf-8")

    def decrypt_bytes(self, token: bytes, context: str) -> bytes:
        """The bytes `encrypt_bytes` sealed; `DecryptionError` when altered or moved."""
        version, body = self._split(token)
        cipher = self._ciphers.get(version)
        if cipher is None:
            raise DecryptionError(f"no personal-data key of version {version} is configured")
        try:
            return cipher.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise DecryptionError(
                f"a {context} value does not decrypt: altered, or stored in the wrong place"
            ) from None

    def version_of(self, token: bytes) -> int:
        """The key version a stored value was encrypted with."""
        return self._split(token)[0]

    def reencrypt(self, token: bytes, context: str) -> bytes:
        """The value under the current key (unchanged when it already is)."""
        if self.version_of(token) == self.current:
            return bytes(token)
        return self.encrypt(self.decrypt(token, context), context)

    @staticmethod
    def _split(token: bytes) -> tuple[int, bytes]:
        token = bytes(token)
        match = _HEADER.match(token)
        if match is None or len(token) - match.end() < NONCE_BYTES + 16:
            raise DecryptionError("not an encrypted Sika value")
        return int(match.group(1)), token[match.end() :]


class BlindIndex:
    """Keyed HMAC-SHA256 of a normalised value: equality search without the plaintext."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ConfigError(f"the blind-index key must be {KEY_BYTES} bytes")
        self._base = hmac.HMAC(key, hashes.SHA256())

    def __repr__(self) -> str:
        return "BlindIndex(<secret>)"

    def digest(self, value: str, context: str) -> bytes:
        """32 bytes; `context` keeps equal values of different kinds apart."""
        mac = self._base.copy()  # pre-keyed copy: about 3x faster than a new HMAC
        mac.update(context.encode())
        mac.update(b"\x00")
        mac.update(value.encode("utf-8"))
        return mac.finalize()


@dataclass(frozen=True)
class PiiKeys:
    """What personal-data code needs: the encryption keyring and the blind index."""

    keyring: Keyring
    blind_index: BlindIndex


def _read_or_create(path: Path, content: str) -> str:
    """The file's text, written first with mode 0600 when it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # a concurrent process may write it first
        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
    return path.read_text()


def dev_keys_dir(home: Path) -> Path:
    """Where development keys live when the environment gives none."""
    return home / "keys"


def load_keys(settings: Settings) -> PiiKeys:
    """Keys from `SIKA_PII_KEYS` / `SIKA_BLIND_INDEX_KEY`, else development files under home.

    The files are generated once (mode 0600); production sets the variables instead.
    """
    keys_dir = dev_keys_dir(settings.home_dir)
    if settings.pii_keys is not None:
        keyring = Keyring.parse(settings.pii_keys.get_secret_value())
    else:
        keyring = Keyring.parse(_read_or_create(keys_dir / "pii.keys", f"1:{generate_key()}\n"))
    if settings.blind_index_key is not None:
        index_key = _decode_key(settings.blind_index_key.get_secret_value(), "SIKA_BLIND_INDEX_KEY")
    else:
        index_key = _decode_key(
            _read_or_create(keys_dir / "blind_index.key", generate_key() + "\n"),
            f"{keys_dir / 'blind_index.key'}",
        )
    return PiiKeys(keyring, BlindIndex(index_key))


def add_dev_key_version(home: Path) -> int:
    """Append a new key version to the development keyring file; returns its version.

    The blind-index key is not rotated: every index would have to be recomputed.
    """
    path = dev_keys_dir(home) / "pii.keys"
    keyring = Keyring.parse(_read_or_create(path, f"1:{generate_key()}\n"))
    version = keyring.current + 1
    with path.open("a") as handle:
        handle.write(f"{version}:{generate_key()}\n")
    return version
