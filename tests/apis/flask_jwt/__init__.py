"""The flask-jwt-extended test API (``app.py``) and the profile that reads its metrics."""

from __future__ import annotations

from pathlib import Path

from sim.profiles.load import BUILTIN

REPO = Path(__file__).resolve().parents[3]
FLASK_PROFILE = REPO / "sim" / "profiles" / BUILTIN / "flask-jwt-extended.toml"


def metrics_profile(folder: Path) -> Path:
    """The shipped flask-jwt-extended profile, plus the test API's verify-time histogram
    (``api_verify_seconds``) as its ``[metrics] verify_time``, written into ``folder``."""
    path = folder / "flask-metrics.toml"
    path.write_text(f'{FLASK_PROFILE.read_text()}\n[metrics]\nverify_time = "api_verify_seconds"\n')
    return path
