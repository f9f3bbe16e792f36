"""Virtual key secrets: `cg_live_` + 32 random base62 characters + a 6-character checksum.

The prefix says what the string is (secret scanners and people recognise it), the checksum lets
the proxy refuse a mistyped or truncated key without touching the database, and only a SHA-256
of the whole secret is ever stored. A secret of ~190 random bits needs no slow password hash:
nobody can guess their way to a preimage, and a fast hash keeps authentication off the hot path.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from typing import Literal

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {char: value for value, char in enumerate(ALPHABET)}
PREFIXES = {"live": "cg_live_", "test": "cg_test_"}
BODY_LENGTH = 32
CHECKSUM_LENGTH = 6
SECRET_LENGTH = len("cg_live_") + BODY_LENGTH + CHECKSUM_LENGTH
# What may be shown of a secret: the prefix and the first four random characters.
DISPLAY_LENGTH = len("cg_live_") + 4

Environment = Literal["live", "test"]


class MalformedSecret(ValueError):
    """Not a CrabGlamp key at all, or one with a typo (its checksum does not match)."""


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, rest = divmod(value, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits))


def _checksum(prefix_and_body: str) -> str:
    return _base62(zlib.crc32(prefix_and_body.encode("ascii")), CHECKSUM_LENGTH)


def generate_secret(environment: Environment = "live") -> str:
    prefix = PREFIXES[environment]
    body = "".join(secrets.choice(ALPHABET) for _ in range(BODY_LENGTH))
    return prefix + body + _checksum(prefix + body)


def check_format(secret: str) -> None:
    """Raise MalformedSecret unless `secret` is a well-formed key with a matching checksum."""
    if len(secret) != SECRET_LENGTH or not secret.startswith(tuple(PREFIXES.values())):
        raise MalformedSecret("not a CrabGlamp virtual key (they start with cg_live_ or cg_test_)")
    rest = secret[len("cg_live_") :]
    if any(char not in _INDEX for char in rest):
        raise MalformedSecret("the key contains characters a CrabGlamp key never has")
    body, checksum = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
    if not hmac.compare_digest(checksum, _checksum(secret[: len("cg_live_")] + body)):
        raise MalformedSecret("the key's checksum does not match: it was mistyped or truncated")


def is_well_formed(secret: str) -> bool:
    try:
        check_format(secret)
    except MalformedSecret:
        return False
    return True


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def display_prefix(secret: str) -> str:
    return secret[:DISPLAY_LENGTH]


def hashes_match(stored_hash: str, secret: str) -> bool:
    """Constant-time comparison of a stored hash with the hash of a presented secret."""
    return hmac.compare_digest(stored_hash.encode("ascii"), hash_secret(secret).encode("ascii"))
