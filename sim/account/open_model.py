"""The open model's account (``--rate``): asked against sent, corrected against service-time
latency, and which side fell behind.

``asked`` is the rate times each device's time on its schedule (from the end of its setup to the
stop, as the load account counts it: ``load.offered_requests``); ``sent`` is the paced requests
that went out (each serves one slot of its device's schedule, ``sim.shape.schedule``). A target that
stalls delays the sends (a device holds one connection), but a device behind its schedule sends
back to back once answered, so the sent count holds unless the target stays slow to the end.

The generator, not the target, was the limit when its CPU was saturated (``generator.saturated``,
the load account's rule), or when its own scheduling lag (sends late with no answer pending) was
large while the target answered fast: generator-lag p99 at least ``GENERATOR_LAG_US`` and above
the service-time p99. Then the corrected latency measures the generator's delay, not the target.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

from sim.account.measure import Measurements, new_histogram, percentiles
from sim.account.offered import MAX_SHORTFALL, load_line, paced
from sim.artefacts.summary_file import Load, OpenModel

__all__ = ["GENERATOR_LAG_US", "open_account"]

# Generator scheduling lag (p99) that counts as the generator falling behind, when the target's
# service time is lower still: well above a gevent loop's wake-up jitter on a busy machine.
GENERATOR_LAG_US = 20_000


def _paced_latency(measurements: Measurements) -> tuple[HdrHistogram, HdrHistogram]:
    """Corrected and service-time latency of the requests that served a slot."""
    corrected, service = new_histogram(), new_histogram()
    for hist in measurements.corrected.values():
        corrected.add(hist)
    for key, hist in measurements.latency.items():
        if key in measurements.corrected and paced(key.endpoint, key.scenario):
            service.add(hist)
    return corrected, service


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value / 1000:,.1f} ms"


def open_account(
    measurements: Measurements, load: Load, *, rate_rps: float, interval_s: float
) -> OpenModel:
    """The summary's ``open_model`` section; marks ``load`` when the generator was the limit."""
    corrected, service = _paced_latency(measurements)
    send_lag = measurements.lag.get("send") or new_histogram()
    generator_lag = measurements.lag.get("generator") or new_histogram()
    sent = measurements.counters.get("scheduled_sends", 0)
    asked = load.get("offered_requests") or 0.0
    active_s = load.get("mean_device_active_s") or 0.0
    offered_rps = load.get("offered_rps") or 0.0
    sent_rps = offered_rps * sent / asked if asked > 0 else 0.0
    shortfall = max(0.0, 1.0 - sent / asked) if asked > 0 else 0.0
    notes: list[str] = []
    service_p99 = service.get_value_at_percentile(99.0) if service.get_total_count() else 0
    lag_p99 = generator_lag.get_value_at_percentile(99.0) if generator_lag.get_total_count() else 0
    lagged = lag_p99 >= GENERATOR_LAG_US and lag_p99 > service_p99
    saturated = load.get("saturated")
    generator_busy = saturated in ("generator", "both")
    if lagged:
        notes.append(
            f"the generator sent late on its own: its scheduling lag p99 was {_ms(lag_p99)} "
            f"while the target answered in {_ms(service_p99)} (p99): corrected latency and "
            "the shortfall measure the generator, not the target (try --workers or a lower "
            "--rate)"
        )
        if not generator_busy:
            load["saturated"] = "generator"
            load["notes"] = [*load["notes"], notes[-1]]
            load["line"] = load_line(load)
    limit = load.get("saturated") if (lagged or generator_busy or load["overloaded"]) else None
    if shortfall > MAX_SHORTFALL and limit is None:
        limit = "target"
    account: OpenModel = {
        "rate_rps": rate_rps,
        "rate_per_device_rps": round(1.0 / interval_s, 6) if interval_s > 0 else 0.0,
        "asked_requests": round(asked, 1),
        "sent_requests": sent,
        "sent_rps": round(sent_rps, 2),
        "shortfall": round(shortfall, 4),
        "mean_device_active_s": round(active_s, 3),
        "corrected_latency_us": percentiles(corrected),
        "service_latency_us": percentiles(service),
        "send_lag_us": percentiles(send_lag),
        "generator_lag_us": percentiles(generator_lag),
        "generator_lag_limit_us": GENERATOR_LAG_US,
        "limit": limit,
        "notes": notes,
    }
    account["line"] = open_line(account)
    return account


def open_line(account: OpenModel) -> str:
    """One plain sentence: asked and sent rate, corrected against service-time p99, the limit."""
    corrected, service = account["corrected_latency_us"], account["service_latency_us"]
    shortfall = account["shortfall"]
    short = f"{shortfall * 100:.0f} % short" if shortfall >= 0.005 else "none short"
    line = (
        f"open model: asked {account['rate_rps']:,.0f} req/s, sent {account['sent_rps']:,.0f} "
        f"({short}); p99 corrected {_ms(corrected.get('p99'))}, "
        f"service time {_ms(service.get('p99'))}"
    )
    limit = account["limit"]
    if limit:
        line += "; the limit: " + {"both": "both sides"}.get(limit, f"the {limit}")
    return line
