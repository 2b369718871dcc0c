"""The documentation cites only files the repository has."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CITED = re.compile(r"\b([A-Za-z_][\w/.-]*\.md)\b")
# Files fleetbench writes into a results folder: named in the docs, not cited as documents.
WRITTEN = {"summary.md"}


def test_every_markdown_file_a_doc_names_exists() -> None:
    """Regression: docs/target-api.md cited a DESIGN.md that is not in the repository."""
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = []
    for doc in docs:
        for name in CITED.findall(doc.read_text()):
            if name in WRITTEN:
                continue
            if not ((REPO / name).exists() or (doc.parent / name).exists()):
                missing.append(f"{doc.relative_to(REPO)} cites {name}")
    assert not missing
