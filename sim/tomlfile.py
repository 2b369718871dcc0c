"""A TOML file read for a user: parse errors and later complaints name the file and the line.

``tomllib`` gives values without positions; :meth:`TomlFile.line_of` finds where a key of a
``[table]`` (or of the n-th ``[[table]]``) was written, so a checker can say "line 12" for a value
it refuses. Used by the smoke thresholds; any other TOML a user writes can use it the same way.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TomlFile", "parse_toml", "read_toml"]

# Makes the exception a complaint is raised as (a one-line SimError subclass, say).
ErrorClass = Callable[[str], Exception]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]?")
_AT = re.compile(
    r"^(?P<message>.*) \(at (?:line (?P<line>\d+), column (?P<column>\d+)|end of document)\)$"
)


@dataclass(frozen=True)
class TomlFile:
    """A parsed TOML document, its text, and the name complaints give it (a path, usually)."""

    source: str
    text: str = field(repr=False)
    data: dict[str, Any] = field(repr=False)

    def line_of(self, table: str | None, index: int, key: str) -> int:
        """The 1-based line of ``key = ...`` in the ``index``-th ``[table]``/``[[table]]`` (None:
        top level), or 0 when it is not written that way (an inline table, say)."""
        key_line = re.compile(rf"""^\s*(["']?){re.escape(key)}\1\s*=""")
        current: str | None = None
        seen: dict[str, int] = {}
        for number, line in enumerate(self.text.splitlines(), start=1):
            header = _HEADER.match(line)
            if header and "=" not in line.split("]", 1)[0]:
                current = header.group(2).strip("\"'")
                if table is None and current == key:  # an unknown table: its header
                    return number
                seen[current] = seen.get(current, -1) + 1
                continue
            if (
                current == table
                and (table is None or seen[table] == index)
                and key_line.match(line)
            ):
                return number
        return 0

    def where(self, table: str | None, index: int, key: str) -> str:
        """``<source> line <n>``, or just the source when the key's line is not known."""
        line = self.line_of(table, index, key)
        return f"{self.source} line {line}" if line else self.source


def parse_toml(text: str, source: str, error: ErrorClass) -> TomlFile:
    """Parse ``text``; invalid TOML is one ``error`` naming the source, line and column."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = _AT.match(str(e))
        if found is None:
            raise error(f"{source}: not valid TOML: {e}") from e
        if found.group("line"):
            where = f"line {found.group('line')}, column {found.group('column')}"
        else:
            where = f"line {max(1, len(text.splitlines()))} (end of file)"
        raise error(f"{source} {where}: not valid TOML: {found.group('message')}") from e
    return TomlFile(source, text, data)


def read_toml(path: Path, error: ErrorClass, what: str) -> TomlFile:
    """Read and parse the file at ``path``; ``what`` names it in a complaint ("thresholds")."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"cannot read {what} file {path}: {e}") from e
    return parse_toml(text, str(path), error)
