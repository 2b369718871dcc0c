from __future__ import annotations

import pytest

from sim.errors import ConfigError
from sim.shape.scenarios import MIXED, parse_scenarios


def test_weights_and_names() -> None:
    assert parse_scenarios("verification") == {"verification": 1}
    assert parse_scenarios("issuance=1, verification=8") == {"issuance": 1, "verification": 8}
    assert parse_scenarios("mixed") == MIXED
    assert parse_scenarios("expiry=2,rejection=0") == {"expiry": 2}


@pytest.mark.parametrize("text", ["nonsense", "issuance=x", "issuance=-1", "expiry=0"])
def test_bad_scenarios_are_one_line_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_scenarios(text)
