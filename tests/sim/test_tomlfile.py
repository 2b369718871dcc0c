"""sim/tomlfile.py: TOML a user wrote, with complaints that name the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.errors import ConfigError
from sim.tomlfile import parse_toml, read_toml

TEXT = """\
top = 1

[run]
error_ratio = 0.01

[[threshold]]
name = "first"
p99_us = 10

[[threshold]]
name = "second"
"p99_us" = 20
"""


def test_line_of_finds_a_key_in_the_nth_array_table() -> None:
    document = parse_toml(TEXT, "t.toml", ConfigError)
    assert document.data["threshold"][1]["p99_us"] == 20
    assert document.line_of(None, 0, "top") == 1
    assert document.line_of("run", 0, "error_ratio") == 4
    assert document.line_of("threshold", 0, "p99_us") == 8
    assert document.line_of("threshold", 1, "p99_us") == 12  # a quoted key too
    assert document.line_of("threshold", 1, "missing") == 0
    assert document.where("threshold", 1, "p99_us") == "t.toml line 12"
    assert document.where("threshold", 1, "missing") == "t.toml"


def test_invalid_toml_is_one_error_of_the_callers_class_with_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"^t\.toml line 2, column \d+: not valid TOML: "):
        parse_toml("a = 1\nb = \n", "t.toml", ConfigError)


def test_an_unreadable_file_names_what_it_is(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    with pytest.raises(ConfigError, match=r"^cannot read profile file .*none\.toml"):
        read_toml(missing, ConfigError, "profile")
    (tmp_path / "ok.toml").write_text("x = 1\n")
    assert read_toml(tmp_path / "ok.toml", ConfigError, "profile").data == {"x": 1}


def test_a_deeply_nested_array_is_one_error_not_a_recursion_error() -> None:
    # issue 30: tomllib recurses, so 5,000 nested arrays raised RecursionError
    with pytest.raises(ConfigError, match="not valid TOML: nested too deep"):
        parse_toml("x = " + "[" * 5000 + "]" * 5000 + "\n", "t.toml", ConfigError)
