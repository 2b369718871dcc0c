"""What comes from the API under test is hostile input: read it bounded, check it where it enters,
make it safe before a terminal, a Markdown page, an XML file or a chart shows it.

The API's statuses, headers, bodies, token contents, ``/metrics`` and redirects are not trusted
(docs/security.md). Every read here has a byte cap and a total deadline, follows no redirect, and
fails as one :class:`sim.errors.TargetUnusable` line; every text shown goes through :func:`shown`.
"""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.structures import CaseInsensitiveDict

from sim.errors import TargetUnreachable, TargetUnusable

__all__ = [
    "ALG_NAME",
    "BODY_BYTES",
    "DEVICE_BODY_BYTES",
    "EXCERPT_BYTES",
    "Answer",
    "AnswerRefused",
    "chart_text",
    "checked_alg",
    "fetch",
    "markdown_cell",
    "parse_json",
    "same_origin",
    "shown",
]

# An excerpt (a refusal's body shown by probe) needs its first lines only.
EXCERPT_BYTES = 16 * 1024
# JSON answers (token, admin, metadata, JWKS) and /metrics: generous for a real API's, small
# enough that a hostile one cannot take the generator's memory.
BODY_BYTES = 4 * 1024 * 1024
# A device's steady-state answer (the lean path reads only its length): past this, it is a
# transport error, not a body to keep reading.
DEVICE_BODY_BYTES = 1024 * 1024
_CHUNK_BYTES = 64 * 1024
# An algorithm name as a JOSE header or RFC 8414 metadata may give it: anything else is refused.
ALG_NAME = re.compile(r"^[A-Za-z0-9_-]{1,16}$")

# ESC sequences first (CSI, OSC up to BEL or ST, any other two-byte escape), then single
# characters no terminal, Markdown page or XML file should get: C0 but tab and newline, DEL,
# C1, lone surrogates and the two non-characters XML 1.0 cannot hold.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~-])")


class AnswerRefused(TargetUnusable):
    """An answer fleetbench will not read: too large, too slow, or nested too deep."""


def shown(text: object, *, newlines: bool = False, limit: int | None = None) -> str:
    """``text`` from the API, safe to show: no control characters or escape sequences (so no
    cursor moves, erased lines or OSC 52 clipboard writes), one line unless ``newlines``, at
    most ``limit`` characters. Print the result as plain text (rich ``markup=False``)."""
    value = _CONTROLS.sub("", _ESCAPES.sub("", str(text)))
    if not newlines:
        value = " ".join(value.split())
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "…"
    return value


def markdown_cell(text: object) -> str:
    """``text`` for a Markdown table cell or line: shown on one line, ``&<>`` as entities (no
    inline HTML), every other character Markdown acts on backslash-escaped (no heading, link,
    image, emphasis or ``|``)."""
    return _MARKDOWN.sub(r"\\\1", html.escape(shown(text), quote=False))


def chart_text(text: object) -> str:
    """``text`` for Plotly (names, labels, hover): Plotly reads a subset of HTML (``<a href>``,
    ``<br>``), so it is shown and then HTML-escaped."""
    return html.escape(shown(text), quote=False)


def checked_alg(value: object) -> str | None:
    """``value`` when it reads as an algorithm name (``ALG_NAME``); None otherwise."""
    return value if isinstance(value, str) and ALG_NAME.match(value) else None


def same_origin(base: str, url: str) -> bool:
    """True when ``url`` has ``base``'s scheme, host and port."""
    want, got = urlsplit(base), urlsplit(url)
    try:
        return (want.scheme, want.hostname, want.port) == (got.scheme, got.hostname, got.port)
    except ValueError:  # a port that is not a number
        return False


def parse_json(data: bytes | str) -> Any:
    """JSON from the API; ValueError for anything that is not (nested too deep included: the
    standard parser recurses, and a RecursionError is no answer to show)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, read whole but bounded (``requests.Response``'s names, so callers read
    it the same way)."""

    status_code: int
    headers: CaseInsensitiveDict[str] = field(repr=False)
    content: bytes = field(repr=False)
    truncated: bool = False  # the body went past the cap and was cut (excerpts only)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return parse_json(self.content)


def fetch(
    session: requests.Session,
    method: str,
    url: str,
    *,
    timeout_s: float,
    cap_bytes: int = BODY_BYTES,
    truncate: bool = False,
    **kwargs: Any,
) -> Answer:
    """One request that follows no redirect (a 3xx is the answer) and reads at most
    ``cap_bytes`` of body within ``timeout_s`` in all (each socket read also waits at most
    ``timeout_s``, so a stalled answer ends within twice that). Past the cap: cut when
    ``truncate`` (an excerpt), else :class:`AnswerRefused`; past the deadline,
    :class:`AnswerRefused`; no answer, :class:`TargetUnreachable`. Messages never hold the
    query string (a profile may put the token there)."""
    where = f"{method} {urlsplit(url).path}"
    deadline = time.monotonic() + timeout_s
    try:
        response = session.request(
            method, url, timeout=timeout_s, allow_redirects=False, stream=True, **kwargs
        )
    except requests.ConnectionError as e:
        raise TargetUnreachable(f"no answer to {where} ({type(e).__name__})") from None
    except requests.RequestException as e:
        raise TargetUnreachable(f"no answer to {where} ({type(e).__name__})") from None
    body = bytearray()
    truncated = False
    try:
        # read1: whatever one socket read brings (read() would wait for a whole chunk, so a
        # body dripped a byte at a time would never reach the deadline check).
        while chunk := response.raw.read1(_CHUNK_BYTES, decode_content=True):
            body += chunk
            if len(body) > cap_bytes:
                if not truncate:
                    raise AnswerRefused(
                        f"{where} answered more than {cap_bytes // 1024} KiB: not read further"
                    )
                del body[cap_bytes:]
                truncated = True
                break
            if time.monotonic() > deadline:
                raise AnswerRefused(f"{where} did not finish its answer within {timeout_s:g} s")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
        raise TargetUnreachable(f"{where}: the answer broke off ({type(e).__name__})") from None
    finally:
        response.close()
    return Answer(response.status_code, response.headers, bytes(body), truncated)
