"""JSON text from clients: what ``json`` accepts but nothing downstream can store or compare.

``json.loads`` turns the escape ``"\\ud800"`` into a lone surrogate, a ``str`` that cannot be
encoded as UTF-8: sqlite3 raised ``UnicodeEncodeError`` on it (a 500) wherever such a string
reached a query. Every JSON document a client sends is checked here once, after parsing.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["has_lone_surrogate"]


def has_lone_surrogate(text: str, value: Any) -> bool:
    """Whether ``value``, parsed from the JSON ``text``, holds a string with a lone surrogate.

    Only a ``\\uD8xx``-``\\uDFxx`` escape can make one (raw surrogates are not valid UTF-8), so
    text without one costs a substring search and no walk over the parsed value.
    """
    if "\\ud" not in text and "\\uD" not in text:
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
