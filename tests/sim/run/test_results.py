"""sim/run/results.py: every command's results folder, stamped one way."""

from __future__ import annotations

from pathlib import Path

from sim.run.results import results_folder


def test_a_given_folder_is_used_and_made(tmp_path: Path) -> None:
    given = tmp_path / "a" / "b"
    assert results_folder(given, "smoke") == given and given.is_dir()


def test_two_commands_in_the_same_second_get_two_folders(tmp_path: Path) -> None:
    # smoke, attack and compare used to share one folder when started in the same second.
    for attempt in range(3):  # a pair may straddle a second's turn; three in a row cannot
        first = results_folder(None, "attack", root=tmp_path / str(attempt))
        second = results_folder(None, "attack", root=tmp_path / str(attempt))
        if second.name.startswith(first.name):
            break
    assert first != second and first.is_dir() and second.is_dir()
    assert first.name.startswith("attack-") and second.name == f"{first.name}-2"
