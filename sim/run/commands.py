"""The user's own commands run mid-run (``--outage-cmd``, ``--rotate-cmd``): split like a shell
would, run without one, bounded in time; a failure is one line naming the option, never the
command's output (it may hold anything)."""

from __future__ import annotations

import shlex
import subprocess
import time

import requests

from sim.errors import ConfigError, SimError, TargetUnusable
from sim.untrusted import EXCERPT_BYTES, fetch

__all__ = ["COMMAND_TIMEOUT_S", "parse_command", "run_command", "wait_answering"]

COMMAND_TIMEOUT_S = 120.0
ANSWER_WAIT_S = 60.0
ANSWER_POLL_S = 0.05


def parse_command(text: str, option: str) -> list[str]:
    """The command's words, or one line saying why not."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise ConfigError(f"{option}: cannot split the command ({e})") from e
    if not words:
        raise ConfigError(f"{option}: the command is empty")
    return words


def run_command(text: str, option: str, timeout_s: float = COMMAND_TIMEOUT_S) -> None:
    """Run the command to its end; a non-zero exit, no such program or a timeout fail the run."""
    words = parse_command(text, option)
    try:
        result = subprocess.run(
            words, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, timeout=timeout_s, check=False,
        )  # fmt: skip
    except FileNotFoundError as e:
        raise SimError(f"{option}: no such program {words[0]!r}") from e
    except subprocess.TimeoutExpired as e:
        raise SimError(f"{option}: the command ran over {timeout_s:g} s") from e
    if result.returncode != 0:
        raise SimError(f"{option}: the command exited {result.returncode}")


def wait_answering(url: str, timeout_s: float = ANSWER_WAIT_S) -> float:
    """Poll ``url`` until it answers HTTP at all (any status); the moment it did (Unix s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with requests.Session() as session:  # the API's answer: read bounded, never whole
                fetch(session, "GET", url, timeout_s=1, cap_bytes=EXCERPT_BYTES, truncate=True)
            return time.time()
        except TargetUnusable:
            time.sleep(ANSWER_POLL_S)
    raise SimError(f"the target at {url} did not answer within {timeout_s:g} s of the outage")
