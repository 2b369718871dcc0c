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

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""")
# Where a value sits: table names, array-of-tables indexes and a key, ("threshold", 2, "p99_us").
KeyPath = tuple[str | int, ...]


def _key_of(line: str) -> str | None:
    match = _KEY.match(line)
    if not match:
        return None
    return next(g for g in match.groups() if g is not None)


def path_line(text: str, path: KeyPath) -> int:
    """The 1-based line that writes ``path`` (a table's header, or a key's line), or 0 when no line
    does (a key inside an inline table, say)."""
    current: KeyPath = ()
    counts: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            names = tuple(part.strip().strip("\"'") for part in header.group(2).split("."))
            if header.group(1) == "[[":
                dotted = ".".join(names)
                counts[dotted] = counts.get(dotted, -1) + 1
                current = (*names, counts[dotted])
            else:
                current = names
            if current == path or (header.group(1) == "[[" and current[:-1] == path):
                return number
            continue
        key = _key_of(line)
        if key is not None and (*current, key) == path:
            return number
    return 0


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
        if table is None:
            return path_line(self.text, (key,))
        if isinstance(self.data.get(table), list):
            return path_line(self.text, (table, index, key))
        return path_line(self.text, (table, key))

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
    except RecursionError:  # tomllib recurses into nested arrays and tables
        raise error(f"{source}: not valid TOML: nested too deep") from None
    return TomlFile(source, text, data)


def read_toml(path: Path, error: ErrorClass, what: str) -> TomlFile:
    """Read and parse the file at ``path``; ``what`` names it in a complaint ("thresholds")."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"cannot read {what} file {path}: {e}") from e
    return parse_toml(text, str(path), error)
