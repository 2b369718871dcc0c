"""Everything a smoke run leaves in its results folder, written in one place.

At the top of the folder: ``summary.json`` (schema ``fleetbench.smoke/1``: the verdict, every
check, and each run's summary under ``runs``), ``junit.xml`` (one test case per threshold per run),
``report.html`` (the checks and each run's charts, linking each run's report) and ``summary.md``
(the same in Markdown, also appended to ``$GITHUB_STEP_SUMMARY`` when that is set, so it shows on
the CI job's page). Each run keeps its own ``<alg>/summary.json``, ``report.html`` and Locust files.
"""

from __future__ import annotations

import os

from sim.artefacts.codec import write_artefact
from sim.output.report import write_smoke_report
from sim.smoke.junit import write_junit
from sim.smoke.markdown import smoke_markdown
from sim.smoke.result import SmokeResult, smoke_record

__all__ = ["write_smoke_outputs"]


def write_smoke_outputs(result: SmokeResult) -> None:
    folder = result.folder
    record = smoke_record(result)
    write_artefact(record, folder / "summary.json")
    write_junit(result, folder / "junit.xml")
    write_smoke_report(record, folder / "report.html")
    markdown = smoke_markdown(result)
    (folder / "summary.md").write_text(markdown)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # GitHub Actions shows this file on the job's page
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(markdown + "\n")
