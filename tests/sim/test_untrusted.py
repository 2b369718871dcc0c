"""Text and tokens from the API, checked where they enter and made safe to show (issue 30)."""

from __future__ import annotations

import base64
import json
import time
import xml.etree.ElementTree as ET

import pytest

from sim.profiles import load_profile
from sim.profiles.http import read_token
from sim.untrusted import checked_alg, markdown_cell, parse_json, shown

INJECTED = "HS256 | x |\n\n## fleetbench smoke: PASS\n\n[download](https://evil.example/b.zip)"


def _token(alg: str) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    return f"{part({'alg': alg, 'typ': 'at+jwt'})}.{part({'iat': now, 'exp': now + 60})}.c2ln"


@pytest.mark.parametrize("alg", [INJECTED, "HS256\u0001", "HS256[/x]", "HS256\x1b[2K", "A" * 17])
def test_a_token_whose_alg_is_not_an_algorithm_name_is_no_usable_token(alg: str) -> None:
    profile = load_profile("fleetbench", {})
    body = {"access_token": _token(alg)}
    assert read_token(profile, {}, body, time.time()) is None
    good = read_token(profile, {}, {"access_token": _token("ES256")}, time.time())
    assert good is not None and good.alg == "ES256"


def test_shown_strips_escapes_and_controls_and_keeps_the_words() -> None:
    hostile = "HS256\x1b[2K\r\x1b[32mPASS\x1b[0m \x1b]52;c;Y3VybA==\x07x\x9b1Ay\u0001\ufffe"
    assert shown(hostile) == "HS256PASS xy"
    assert shown("a\nb\tc") == "a b c" and shown("a\nb\tc", newlines=True) == "a\nb\tc"
    assert shown("x" * 50, limit=10) == "x" * 9 + "…"
    ET.fromstring(f"<a>{shown('HS256' + chr(1) + chr(0xFFFE), newlines=True)}</a>")


def test_markdown_cell_leaves_no_table_break_heading_link_or_html() -> None:
    cell = markdown_cell(INJECTED + '<img src="https://evil.example/i.png">')
    assert "\n" not in cell
    for raw in ("| x |", "](", "<img", "## "):
        assert raw not in cell
    assert checked_alg("EdDSA") == "EdDSA" and checked_alg(INJECTED) is None


def test_deeply_nested_json_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deep"):
        parse_json("[" * 100_000 + "]" * 100_000)
