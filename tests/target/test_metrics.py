"""``/metrics``: the counters and the verify-time histogram a benchmark reads."""

from __future__ import annotations

import re

import requests

from sim.account.server_view import MetricsCpuSampler
from sim.run.embedded import EmbeddedTarget
from tests.conftest import StartTarget
from tests.target.helpers import (
    JWT_BEARER,
    TIMEOUT_S,
    client_token,
    device_assertion,
    get,
    new_device,
    request_token,
    send_reading,
    wait_until,
)

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _samples(text: str) -> Samples:
    """(name, labels) -> value for every sample line of a Prometheus text exposition."""
    samples: Samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, line
            labels = frozenset(_LABEL.findall(match["labels"] or ""))
            samples[(match["name"], labels)] = float(match["value"])
    return samples


def _metrics(target: EmbeddedTarget) -> Samples:
    response = requests.get(f"{target.url}/metrics", timeout=TIMEOUT_S)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return _samples(response.text)


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_metrics_count_issuance_verification_and_telemetry(start_target: StartTarget) -> None:
    target = start_target("ES256")
    device = new_device(target, key_alg="EdDSA")
    token = client_token(target, device)
    assert request_token(
        target, {"grant_type": JWT_BEARER, "assertion": device_assertion(device)}
    ).ok
    assert request_token(target, {"grant_type": "client_credentials"}).status_code == 401
    assert request_token(target, {"grant_type": "implicit"}).status_code == 400
    for seq in range(3):
        assert send_reading(target, device.id, token, seq).status_code == 202
    assert get(target, "/api/data").status_code == 401
    assert get(target, "/api/data", "a.b.c").status_code == 401
    assert get(target, "/api/data", token + "x").status_code == 401

    samples = _metrics(target)
    issued = "fleetbench_tokens_issued_total"
    assert _value(samples, issued, grant="client_credentials", alg="ES256") == 1
    assert _value(samples, issued, grant="jwt_bearer", alg="ES256") == 1
    errors = "fleetbench_token_errors_total"
    assert _value(samples, errors, error="invalid_client") == 1
    assert _value(samples, errors, error="unsupported_grant_type") == 1
    verifications = "fleetbench_verifications_total"
    assert _value(samples, verifications, result="ok") == 3
    assert _value(samples, verifications, result="missing") == 1
    assert _value(samples, verifications, result="malformed") == 1
    assert _value(samples, verifications, result="signature") == 1
    assert _value(samples, "fleetbench_telemetry_accepted_total") == 3
    for le in ("5e-06", "5e-05", "0.0005", "+Inf"):
        assert ("fleetbench_verify_seconds_bucket", frozenset({("alg", "ES256"), ("le", le)})) in (
            samples
        ), le
    # Every token that reached the verifier was timed (the request without one was not).
    assert _value(samples, "fleetbench_verify_seconds_count", alg="ES256") == 5
    assert _value(samples, "fleetbench_verify_seconds_bucket", alg="ES256", le="+Inf") == 5
    assert 0 < _value(samples, "fleetbench_verify_seconds_sum", alg="ES256") < 5
    # The active-device gauge follows the registry at the next upkeep tick.
    assert wait_until(
        lambda: _value(_metrics(target), "fleetbench_active_devices") == 1, timeout_s=3.0
    )


def test_metrics_name_no_device_and_no_secret(start_target: StartTarget) -> None:
    target = start_target("HS256")
    device = new_device(target)
    token = client_token(target, device)
    assert get(target, "/api/data", token).status_code == 200
    text = requests.get(f"{target.url}/metrics", timeout=TIMEOUT_S).text
    assert device.id not in text
    assert token not in text
    assert target.admin_key not in text


def test_a_generator_elsewhere_reads_the_targets_own_cpu(start_target: StartTarget) -> None:
    # A run against --target has no process of its own to watch: it reads the target's CPU
    # from process_cpu_seconds_total, which a registry of our own exports only if asked.
    target = start_target("HS256")
    assert _value(_metrics(target), "process_cpu_seconds_total") > 0
    sampler = MetricsCpuSampler(target.url, interval_s=0.1).start()
    try:
        assert wait_until(lambda: len(sampler.samples) >= 2, timeout_s=10)
    finally:
        sampler.stop()
    cpu = sampler.summary(None)
    assert sampler.exported and cpu["available"] and cpu["samples"] >= 2, cpu
