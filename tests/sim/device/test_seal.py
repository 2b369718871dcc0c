"""The cluster key: a proof that does not carry it, and seals that open only for the worker,
message type and challenge they were made for."""

from __future__ import annotations

import pytest

from sim.device.seal import KEY_ENV, ClusterKey, Unsealed, new_key_text
from sim.errors import ConfigError

CHALLENGE = b"c" * 32
SECRET = "device-secret-0123456789"


def test_a_seal_opens_for_its_own_worker_type_and_challenge_only() -> None:
    key = ClusterKey(new_key_text())
    sealed = key.seal("fleetbench_shard", "w1", CHALLENGE, {"secret": SECRET, "n": [1, 2]})
    assert SECRET.encode() not in sealed
    assert key.open("fleetbench_shard", "w1", CHALLENGE, sealed) == {"secret": SECRET, "n": [1, 2]}
    # Another worker, another type, another run (challenge), another key, a flipped bit.
    for kind, worker, challenge, other in (
        ("fleetbench_shard", "w2", CHALLENGE, key),
        ("fleetbench_claim", "w1", CHALLENGE, key),
        ("fleetbench_shard", "w1", b"d" * 32, key),
        ("fleetbench_shard", "w1", CHALLENGE, ClusterKey(new_key_text())),
    ):
        with pytest.raises(Unsealed, match="failed authentication"):
            other.open(kind, worker, challenge, sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(Unsealed):
        key.open("fleetbench_shard", "w1", CHALLENGE, tampered)
    with pytest.raises(Unsealed, match="not sealed"):
        key.open("fleetbench_shard", "w1", CHALLENGE, {"secret": SECRET})


def test_each_seal_has_a_fresh_nonce() -> None:
    key = ClusterKey(new_key_text())
    first, second = (key.seal("k", "w1", CHALLENGE, {"a": 1}) for _ in range(2))
    assert first != second and first[:12] != second[:12]


def test_the_proof_answers_one_challenge_for_one_worker() -> None:
    text = new_key_text()
    key = ClusterKey(text)
    proof = key.proof(CHALLENGE, "w1")
    assert text.encode() not in proof and len(proof) == 32
    assert ClusterKey(text).proves(CHALLENGE, "w1", proof)
    assert not key.proves(CHALLENGE, "w2", proof)
    assert not key.proves(b"d" * 32, "w1", proof)
    assert not ClusterKey(new_key_text()).proves(CHALLENGE, "w1", proof)
    assert not key.proves(CHALLENGE, "w1", "not bytes")


# Named ids: a random key in a test's id differs between pytest-xdist's workers, which refuse that.
@pytest.mark.parametrize(
    "text", ["short", "x" * 43 + "!", new_key_text()[:-2]], ids=["short", "bad-char", "truncated"]
)
def test_a_bad_key_is_one_line_that_does_not_echo_it(text: str) -> None:
    with pytest.raises(ConfigError, match=KEY_ENV) as raised:
        ClusterKey(text)
    assert text not in str(raised.value)


def test_the_key_comes_from_the_environment_and_hides_in_repr() -> None:
    text = new_key_text()
    assert len(text) == 43
    key = ClusterKey.from_env({KEY_ENV: text})
    assert key is not None and text not in repr(key)
    assert ClusterKey.from_env({}) is None and ClusterKey.from_env({KEY_ENV: "  "}) is None
