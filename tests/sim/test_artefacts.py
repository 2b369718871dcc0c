"""The JSON artefacts against their types: the committed JSON Schemas are the ones the types
generate, and real outputs of every command (run, smoke, attack, compare, provision) decode to
exactly what was written: every key is typed, every value has its declared type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from sim.artefacts.codec import (
    ARTEFACTS,
    ArtefactError,
    read_attack,
    read_compare,
    read_fleet,
    read_smoke,
    read_summary,
    read_summary_or_smoke,
    write_summary,
)
from sim.artefacts.schemas import SCHEMA_DIR, json_schema, main, normalised
from sim.artefacts.summary_file import SUMMARY_SCHEMA, Summary
from tests.commands import fleetbench, fleetbench_here
from tests.sim.conftest import RealCommand, golden_path, serve_broken_target

REPO = Path(__file__).resolve().parents[2]


def _same_as_written(path: Path, decoded: object) -> None:
    """msgspec drops keys a TypedDict does not declare: equality proves none were dropped."""
    assert decoded == json.loads(path.read_text())


def _same_schema(committed_text: str, name: str) -> bool:
    """Meaning, not bytes: parsed JSON, descriptions cleaned as the generator cleans them."""
    return bool(normalised(json.loads(committed_text)) == json_schema(name))


@pytest.mark.parametrize("name", sorted(ARTEFACTS))
def test_committed_schema_is_what_the_types_generate(name: str) -> None:
    committed = SCHEMA_DIR / f"{name}.schema.json"
    assert _same_schema(committed.read_text(), name), "run: python -m sim.artefacts.schemas"


def _rewritten(schema: Any, key: str, old: object, new: object) -> tuple[Any, int]:
    """``schema`` with every ``key: old`` made ``key: new``, and how many were."""
    if isinstance(schema, dict):
        count = 0
        out = {}
        for k, v in schema.items():
            if k == key and v == old:
                out[k], count = new, count + 1
            else:
                out[k], n = _rewritten(v, key, old, new)
                count += n
        return out, count
    if isinstance(schema, list):
        items = [_rewritten(v, key, old, new) for v in schema]
        return [v for v, _ in items], sum(n for _, n in items)
    return schema, 0


def test_schema_check_passes_a_generators_indentation() -> None:
    """Regression: msgspec 0.23 keeps a docstring's indentation in ``description`` (0.22 strips it),
    which failed every schema test on a fresh install though no type had changed."""
    text = (SCHEMA_DIR / "summary.schema.json").read_text()
    indented = text.replace("\\n", "\\n    ")
    assert indented != text
    assert _same_schema(indented, "summary")


def test_schema_check_fails_when_a_field_type_changes() -> None:
    committed = json.loads((SCHEMA_DIR / "summary.schema.json").read_text())
    changed, count = _rewritten(committed, "type", "integer", "string")
    assert count > 0
    assert not _same_schema(json.dumps(changed), "summary")
    described, count = _rewritten(
        committed, "description", committed["$defs"]["Server"]["description"], "Something else."
    )
    assert count == 1
    assert not _same_schema(json.dumps(described), "summary")


def test_schemas_command_writes_one_file_per_artefact(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}.schema.json" for name in ARTEFACTS
    )
    for name in ARTEFACTS:
        schema = json.loads((tmp_path / f"{name}.schema.json").read_text())
        assert schema["title"] == name and "$defs" in schema


def test_real_run_summary_matches_its_type(
    real_mixed_summary: dict[str, Any], tmp_path: Path
) -> None:
    mixed_summary = real_mixed_summary
    path = Path(mixed_summary["run"]["results"]) / "summary.json"
    summary = read_summary(path)
    _same_as_written(path, summary)
    # the mixed run fills the optional sections too
    assert summary["expiry"] is not None and summary["corpus"] is not None
    assert read_summary_or_smoke(path) == summary
    # the one writer writes what the run wrote
    write_summary(cast(Summary, mixed_summary), tmp_path / "summary.json")
    assert (tmp_path / "summary.json").read_text() == path.read_text()


def test_real_smoke_and_its_runs_match_their_types(real_smoke: RealCommand) -> None:
    results, done = real_smoke.results, real_smoke.done
    assert done.returncode in (0, 1), done.stderr  # a breach on a busy machine is still a record
    smoke = read_smoke(results / "summary.json")
    _same_as_written(results / "summary.json", smoke)
    assert list(smoke["runs"]) == ["HS256", "ES256"]
    assert read_summary_or_smoke(results / "summary.json") == smoke
    for alg in smoke["runs"]:
        run = read_summary(results / alg / "summary.json")
        _same_as_written(results / alg / "summary.json", run)


@pytest.mark.slow
def test_real_attack_matches_its_type(tmp_path: Path) -> None:
    done = fleetbench("attack", "--algs", "ES256", "--quiet", "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr
    attack = read_attack(tmp_path / "attack.json")
    _same_as_written(tmp_path / "attack.json", attack)
    assert attack["runs"][0]["counts"]["cases"] == len(attack["runs"][0]["cases"])


@pytest.mark.slow
def test_real_attack_through_a_profile_matches_its_type(tmp_path: Path) -> None:
    lax = REPO / "tests" / "apis" / "lax" / "profile.toml"
    with serve_broken_target("tests.apis.lax.app:app") as url:
        done = fleetbench(
            "attack", "--profile", str(lax), "--target", url, "--quiet", "--results", str(tmp_path)
        )
    assert done.returncode == 1, done.stderr  # the lax API accepts forgeries
    attack = read_attack(tmp_path / "attack.json")
    _same_as_written(tmp_path / "attack.json", attack)
    run = attack["runs"][0]
    assert run.get("profile") == "lax" and run["counts"].get("finding", 0) > 0
    assert {case.get("severity") for case in run["cases"]} >= {"critical", "high", "low"}


def test_real_compare_matches_its_type(real_micro_compare: RealCommand) -> None:
    done, folder = real_micro_compare.done, real_micro_compare.results
    assert done.returncode == 0, done.stderr
    compare = read_compare(folder / "compare.json")
    _same_as_written(folder / "compare.json", compare)
    assert list(compare["algorithms"]) == ["HS256", "ES256", "EdDSA"]


def test_real_end_to_end_compare_matches_its_type(real_e2e_compare: RealCommand) -> None:
    done, folder = real_e2e_compare.done, real_e2e_compare.results
    assert done.returncode == 0, done.stderr
    compare = read_compare(folder / "compare.json")
    _same_as_written(folder / "compare.json", compare)
    assert compare["end_to_end"] and "e2e_rps" in compare["algorithms"]["HS256"]


@pytest.mark.slow
@pytest.mark.parametrize("alg", ["ES256", "secret"])
def test_real_fleet_file_matches_its_type(tmp_path: Path, alg: str) -> None:
    out = tmp_path / "fleet.json"
    done = fleetbench("provision", "--devices", "3", "--alg", alg, "--out", str(out))
    assert done.returncode == 0, done.stderr
    fleet = read_fleet(out)
    _same_as_written(out, fleet)
    assert len(fleet["devices"]) == 3
    assert ("private_key" in fleet["devices"][0]) == (alg != "secret")


def test_a_wrong_field_type_is_refused_with_its_path(tmp_path: Path) -> None:
    body = json.loads(golden_path("mixed").read_text())
    body["totals"]["requests"] = "many"
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ArtefactError) as refused:
        read_summary(path)
    message = str(refused.value)
    assert message == (
        f"{path} is not a valid fleetbench.summary/1 file: "
        "Expected `int`, got `str` - at `$.totals.requests`"
    )
    assert isinstance(refused.value.__cause__, msgspec.ValidationError)


def test_unreadable_and_foreign_files_are_one_line_errors(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    with pytest.raises(ArtefactError, match=r"none\.json not found$"):
        read_summary(missing)
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    with pytest.raises(ArtefactError, match="is not readable JSON"):
        read_summary_or_smoke(garbage)
    foreign = tmp_path / "fleet.json"
    foreign.write_text(json.dumps({"schema": "fleetbench.fleet/1"}))
    with pytest.raises(ArtefactError, match=r"not a fleetbench summary\.json \(schema 'fleetbench"):
        read_summary_or_smoke(foreign)
    with pytest.raises(ArtefactError, match=r"fleetbench\.fleet/1 file: Object missing"):
        read_fleet(foreign)
    with pytest.raises(ArtefactError) as other:
        read_summary(foreign)
    assert (
        str(other.value) == f"{foreign} is not a fleetbench summary.json (schema {SUMMARY_SCHEMA})"
    )


def test_diff_refuses_a_summary_with_a_wrong_type_in_one_line(tmp_path: Path) -> None:
    good = golden_path("mixed")
    body = json.loads(good.read_text())
    body["requests"][0]["latency_us"]["p99"] = "slow"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(body))
    done = fleetbench_here("diff", str(good), str(bad))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"fleetbench: error: {bad} is not a valid fleetbench.summary/1 file: "
        "Expected `float`, got `str` - at `$.requests[0].latency_us.p99`"
    ]
