"""Where a command's outputs go: the folder it was given, or a new stamped one in ``results/``."""

from __future__ import annotations

import datetime
from pathlib import Path

__all__ = ["results_folder"]


def results_folder(given: Path | None, kind: str, root: Path = Path("results")) -> Path:
    """``given`` if set, else ``results/<kind>-<YYYYmmdd-HHMMSS>`` (``-2``, ``-3``... when two
    commands start in the same second); created either way."""
    if given is not None:
        folder = given
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = root / f"{kind}-{stamp}"
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = root / f"{kind}-{stamp}-{suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
