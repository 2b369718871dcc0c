"""Where a command's outputs go: the folder it was given, or a new stamped one in ``results/``."""

from __future__ import annotations

import datetime
from pathlib import Path

__all__ = ["results_folder"]


def results_folder(given: Path | None, kind: str, root: Path = Path("results")) -> Path:
    """``given`` if set, else ``results/<kind>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... when two
    commands start in the same second); created either way."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        return given
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    root.mkdir(parents=True, exist_ok=True)
    suffix = 1
    while True:
        folder = root / (f"{kind}-{stamp}" if suffix == 1 else f"{kind}-{stamp}-{suffix}")
        try:
            folder.mkdir()  # not exist_ok: two processes in the same second get two folders
        except FileExistsError:
            suffix += 1
            continue
        return folder
