"""``rtqa batch`` on generated cases with the real pipeline: corrupt input, resume after SIGKILL,
a crashing worker, a time limit, and a Dask LocalCluster giving the same summary."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from rtqa.batch import BatchOptions, run_batch
from rtqa.batch_task import TEST_HOOK_ENV
from rtqa.report.jsonfmt import load_schema
from rtqa.synthetic import generate_batch

SEED = 35  # six spine/bone cases (quick to check), one with a truncated dose
N = 6


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch_in")
    entries = generate_batch(root, N, SEED)
    return root, entries


def _label(entry) -> str:
    return f"B{SEED % 1000:03d}{entry.name[5:]}"


def _options(root, out, **kw) -> BatchOptions:
    return BatchOptions(root=str(root), out=str(out), progress_mode="quiet", **kw)


@pytest.fixture(scope="module")
def local_run(cases, tmp_path_factory):
    root, _ = cases
    out = tmp_path_factory.mktemp("batch_out")
    return out, run_batch(_options(root, out, workers=2))


def _comparable(rows):
    keep = ("course_id", "patient_id", "plans", "fractions", "prescription_gy", "status")
    keep += ("exit_code", "major", "minor", "not_evaluable", "pass", "info", "worst_finding")
    keep += ("error", "result_file")
    return sorted(tuple(r[k] for k in keep) for r in rows)


def test_local_pool_checks_every_case_and_reports_the_corrupt_one(cases, local_run):
    import jsonschema

    _, entries = cases
    out, report = local_run
    assert report.planned == N and report.computed == N and report.skipped == 0
    rows = {r["course_id"]: r for r in report.rows}
    assert set(rows) == {_label(e) for e in entries}
    bad = [e for e in entries if e.corruption]
    assert len(bad) == 1 and bad[0].corruption == "truncated_dose"
    row = rows[_label(bad[0])]
    assert row["status"] == "error" and row["exit_code"] == 3
    assert "truncated" in row["error"]
    for e in entries:
        if not e.corruption:
            assert rows[_label(e)]["status"] in ("pass", "minor", "major", "not_evaluable")
            assert rows[_label(e)]["error"] == ""
            assert rows[_label(e)]["fractions"] == str(e.fractions)
            assert float(rows[_label(e)]["prescription_gy"]) == pytest.approx(e.rx_gy)
    # one result per course, each valid against the rtqa check schema
    files = sorted((out / "results").glob("*.json"))
    assert len(files) == N
    schema = load_schema()
    for f in files:
        jsonschema.validate(json.loads(f.read_text()), schema)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["courses"] == N and summary["pending"] == 0
    assert summary["exit_code"] == report.exit_code
    codes = {r["exit_code"] for r in report.rows}
    assert report.exit_code == (1 if 1 in codes else 3)
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert len(csv_lines) == N + 1 and csv_lines[0].startswith("course_id,patient_id,plans")


def test_rerun_skips_everything_and_keeps_files(cases, local_run):
    root, _ = cases
    out, first = local_run
    before = {p: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    again = run_batch(_options(root, out, workers=2))
    assert again.skipped == N and again.computed == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "results").iterdir()} == before
    assert _comparable(again.rows) == _comparable(first.rows)


def test_resume_after_sigkill_computes_only_the_rest(cases, local_run, tmp_path):
    root, _ = cases
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rtqa", "batch", str(root), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--workers", "1", "--quiet"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = out / "results"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if results.is_dir() and len(list(results.glob("*.json"))) >= 2:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = list(results.glob("*.json"))
    assert 2 <= len(done) < N, "the run was not interrupted halfway"
    for f in done:  # complete documents only: atomic writes
        json.loads(f.read_text())
    report = run_batch(_options(root, out, workers=2))
    assert report.skipped == len(done)
    assert report.computed == N - len(done)
    assert not list(results.glob(".tmp-*"))
    assert _comparable(report.rows) == _comparable(local_run[1].rows)


def test_crashing_worker_and_timeout_become_error_rows_and_are_retried(cases, tmp_path):
    root, entries = cases
    small = tmp_path / "in"
    good = [e for e in entries if not e.corruption][:2]
    bad = next(e for e in entries if e.corruption)
    for e in (*good, bad):
        shutil.copytree(root / e.name, small / e.name)
    crash, hang = _label(good[0]), _label(good[1])
    out = tmp_path / "out"
    os.environ[TEST_HOOK_ENV] = f"crash:{crash},hang:{hang}"
    try:
        start = time.monotonic()
        report = run_batch(_options(small, out, workers=2, timeout=6.0))
        took = time.monotonic() - start
    finally:
        del os.environ[TEST_HOOK_ENV]
    rows = {r["course_id"]: r for r in report.rows}
    assert rows[crash]["status"] == "error"
    assert "exited with status 70" in rows[crash]["error"]
    assert rows[hang]["status"] == "error" and "time limit of 6 s" in rows[hang]["error"]
    assert rows[_label(bad)]["status"] == "error" and "truncated" in rows[_label(bad)]["error"]
    assert took < 30
    assert len(list((out / "results").glob("*.failed.json"))) == 2
    pages = sorted((out / "results").glob("*.html"))
    failure_pages = [p for p in pages if "exited with status 70" in p.read_text("utf-8")]
    assert len(failure_pages) == 1
    # the next run retries only the two that failed to run; without HTML, the failure pages of
    # the earlier run are removed (they must never stand for the new results)
    report = run_batch(_options(small, out, workers=2, timeout=60.0, html=False))
    assert report.skipped == 1 and report.computed == 2
    rows = {r["course_id"]: r for r in report.rows}
    assert rows[crash]["status"] != "error" and rows[hang]["status"] != "error"
    assert not list((out / "results").glob("*.failed.json"))
    assert not failure_pages[0].exists()
    # a run with HTML draws the two missing reports: the results' own, not the failures'
    report = run_batch(_options(small, out, workers=2, timeout=60.0))
    assert report.computed == 2
    drawn = [p.read_text("utf-8") for p in (out / "results").glob("*.html")]
    assert len(drawn) == 3 and not [t for t in drawn if "exited with status 70" in t]


def test_dask_local_cluster_gives_the_same_summary(cases, local_run, tmp_path):
    root, _ = cases
    out = tmp_path / "dask"
    report = run_batch(_options(root, out, workers=2, local_cluster=True))
    assert report.computed == N
    assert _comparable(report.rows) == _comparable(local_run[1].rows)
    assert report.exit_code == local_run[1].exit_code
