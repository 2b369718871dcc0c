"""The documentation holds: every file it cites exists, every relative link resolves (to a file,
and to a heading where it names one), every command example parses, and every command's page names
every one of its flags."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from sim.cli import COMMANDS, build_parser
from target.settings import build_parser as build_target_parser

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = [README, *sorted((REPO / "docs").rglob("*.md"))]
CITED = re.compile(r"\b([A-Za-z_][\w/.-]*\.md)\b")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#+) (.*)$")
FLAG = re.compile(r"--[a-z][a-z0-9-]*")
# A repository path in backticks: `sim/cli/`, `tests/apis/lax/profile.toml`.
REPO_PATH = re.compile(r"`((?:sim|target|tests|benchmarks|docs|scripts)/[\w/.-]*)`")
# Files fleetbench writes into a results folder: named in the docs, not cited as documents.
WRITTEN = {"summary.md"}


def _prose(doc: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of ``doc`` outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            yield number, line


def _shell_examples(doc: Path) -> Iterator[tuple[int, str]]:
    """(line number, command) of each command in the doc's ``sh`` blocks, continuations joined."""
    in_sh, pending, start = False, "", 0
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        if line.startswith("```"):
            in_sh = line.strip() == "```sh"
            continue
        if not in_sh:
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        command = (pending + line).strip()
        pending = ""
        if command and not command.startswith("#"):
            yield start, command


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, line in _prose(doc):
        if match := HEADING.match(line):
            slug = _slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--")} - {"--help"}


def test_every_markdown_file_a_doc_names_exists() -> None:
    """Regression: docs/target-api.md cited a DESIGN.md that is not in the repository."""
    missing = []
    for doc in DOCS:
        text = LINK.sub("", doc.read_text())  # links are the next test's
        for name in CITED.findall(text):
            if name in WRITTEN:
                continue
            if not ((REPO / name).exists() or (doc.parent / name).exists()):
                missing.append(f"{doc.relative_to(REPO)} cites {name}")
    assert not missing


def test_every_repository_path_a_doc_names_exists() -> None:
    """The docs follow the code when it moves."""
    missing = [
        f"{doc.relative_to(REPO)}:{number} names {path}"
        for doc in DOCS
        for number, line in _prose(doc)
        for path in REPO_PATH.findall(line)
        if not (REPO / path).exists()
    ]
    assert not missing


def test_every_relative_link_resolves_to_a_file_and_heading() -> None:
    broken = []
    for doc in DOCS:
        for number, line in _prose(doc):
            for target in LINK.findall(line):
                if re.match(r"[a-z]+:", target):  # https:, mailto:
                    continue
                path, _, anchor = target.partition("#")
                linked = (doc.parent / path).resolve() if path else doc
                where = f"{doc.relative_to(REPO)}:{number} links {target}"
                if not linked.exists():
                    broken.append(f"{where}: no such file")
                elif anchor and (linked.suffix != ".md" or anchor not in _anchors(linked)):
                    broken.append(f"{where}: no such heading")
    assert not broken


def test_the_readme_is_a_front_door_linking_every_commands_page() -> None:
    """Every command's full reference is one link away from the README, which stays short."""
    readme = README.read_text()
    assert len(readme.splitlines()) <= 200
    assert "make run" in readme and "make test" in readme
    for name in _subcommands():
        page = REPO / "docs" / "cli" / f"{name}.md"
        assert page.exists(), f"no reference page for fleetbench {name}"
        assert f"](docs/cli/{name}.md)" in readme, f"the README does not link {page.name}"
    assert len(_subcommands()) == len(COMMANDS)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_each_commands_page_names_every_flag_and_only_its_own_in_its_tables(name: str) -> None:
    page = REPO / "docs" / "cli" / f"{name}.md"
    text = page.read_text()
    options = _long_options(_subcommands()[name])
    unnamed = sorted(o for o in options if not re.search(re.escape(o) + r"(?![\w-])", text))
    assert not unnamed, f"{page.name} does not describe {unnamed}"
    # A flag table (first column) lists only this command's flags.
    tabled = {
        flag
        for _, line in _prose(page)
        if line.startswith("| `--")
        for flag in FLAG.findall(line.split("|")[1])
    }
    assert tabled <= options, f"{page.name} tables flags {sorted(tabled - options)} it lacks"


def test_the_targets_page_names_every_flag() -> None:
    text = (REPO / "docs" / "target.md").read_text()
    unnamed = sorted(o for o in _long_options(build_target_parser()) if f"`{o}" not in text)
    assert not unnamed


EXAMPLES = {
    f"{doc.relative_to(REPO)}:{number}": command
    for doc in DOCS
    for number, command in _shell_examples(doc)
}


def test_the_docs_have_examples_to_check() -> None:
    assert sum("fleetbench " in command for command in EXAMPLES.values()) >= 40


@pytest.mark.parametrize("command", list(EXAMPLES.values()), ids=list(EXAMPLES))
def test_each_shell_example_parses(command: str) -> None:
    """``fleetbench`` and ``python -m target`` examples parse with the real parsers; ``python -m``
    names a module that exists; ``make`` a target of the Makefile."""
    argv = shlex.split(command, comments=True)
    while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):  # VAR=value before the command
        argv.pop(0)
    if not argv:
        return
    program, *args = argv
    if program == "fleetbench":
        parser = build_parser()
    elif program.endswith("python") and args[:1] == ["-m"]:
        module = args[1]
        assert importlib.util.find_spec(module) is not None, f"no module {module}"
        if module != "target":
            return
        parser, args = build_target_parser(), args[2:]
    elif program == "make":
        makefile = (REPO / "Makefile").read_text()
        assert all(re.search(rf"^{t}:", makefile, re.M) for t in args), command
        return
    else:  # locust, npm, ssh: not ours to parse
        return
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args(args)
        except SystemExit as e:
            assert e.code == 0, stderr.getvalue()
