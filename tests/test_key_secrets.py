from __future__ import annotations

import hashlib

import pytest

from crabglamp.key_secrets import (
    ALPHABET,
    SECRET_LENGTH,
    MalformedSecret,
    check_format,
    display_prefix,
    generate_secret,
    hash_secret,
    hashes_match,
    is_well_formed,
)


def test_a_generated_secret_is_recognisable_and_well_formed() -> None:
    secret = generate_secret()
    assert secret.startswith("cg_live_")
    assert len(secret) == SECRET_LENGTH
    check_format(secret)
    assert generate_secret("test").startswith("cg_test_")
    assert is_well_formed(generate_secret("test"))


def test_secrets_are_not_repeated() -> None:
    assert len({generate_secret() for _ in range(2000)}) == 2000


def test_every_single_character_typo_is_caught_without_a_database() -> None:
    secret = generate_secret()
    for position in range(len("cg_live_"), len(secret)):
        for replacement in (ALPHABET[0], ALPHABET[-1], "Q"):
            if secret[position] == replacement:
                continue
            typo = secret[:position] + replacement + secret[position + 1 :]
            with pytest.raises(MalformedSecret):
                check_format(typo)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
        "cg_prod_" + "a" * 38,
        "cg_live_" + "a" * 20,
        "cg_live_" + "a" * 37 + "!",
    ],
)
def test_strings_that_are_not_keys_are_refused(candidate: str) -> None:
    assert not is_well_formed(candidate)


def test_a_truncated_or_extended_secret_is_refused() -> None:
    secret = generate_secret()
    assert not is_well_formed(secret[:-1])
    assert not is_well_formed(secret + "a")


def test_only_a_hash_and_a_short_prefix_are_kept() -> None:
    secret = generate_secret()
    digest = hash_secret(secret)
    assert digest == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in digest
    prefix = display_prefix(secret)
    assert prefix == secret[:12] and prefix.startswith("cg_live_")
    assert hashes_match(digest, secret)
    assert not hashes_match(digest, generate_secret())
