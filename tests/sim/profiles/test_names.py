"""A shipped profile's name resolves whatever the current folder holds, and a file of the same
name is called ambiguous (issue 26 item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.profiles import ProfileError, load_profile

ENV = {"JWT_SECRET": "x" * 32}


def test_a_folder_named_like_a_shipped_profile_does_not_hide_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "seed-express").mkdir()  # e.g. a checkout of the API itself
    monkeypatch.chdir(tmp_path)
    profile = load_profile("seed-express", ENV)
    assert profile.name == "seed-express" and profile.source == "seed-express (built in)"


def test_a_file_named_like_a_shipped_profile_is_ambiguous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "seed-express").write_text('name = "mine"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError) as caught:
        load_profile("seed-express", ENV)
    assert str(caught.value) == (
        "profile 'seed-express' is ambiguous: a shipped profile and a file here;"
        " give ./seed-express for the file"
    )
    with pytest.raises(ProfileError, match="at least one"):  # the file, as asked
        load_profile("./seed-express", ENV)
