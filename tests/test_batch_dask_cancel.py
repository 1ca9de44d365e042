"""``rtqa batch --scheduler``: Ctrl-C stops the courses already running on the Dask workers
(``future.cancel`` cannot stop a running task; the batch sets a stop event its tasks poll)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_batch_exit import _course_children, _wait_for

from rtqa.batch import BatchOptions, run_batch
from rtqa.batch_task import TEST_HOOK_ENV

distributed = pytest.importorskip("distributed")

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (not yet reaped by its worker) has ended too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_ctrl_c_stops_the_course_running_on_a_remote_worker(tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "spine_3fx", root / "spine_3fx")
    out = tmp_path / "out"
    token = f"rtqa-test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv(TEST_HOOK_ENV, f"hang:SPINE3FX,{token}:none")  # the workers inherit it
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    ) as cluster:
        env = {k: v for k, v in os.environ.items() if k not in (TEST_HOOK_ENV, "RTQA_DEBUG")}
        args = ["batch", str(root), "--out", str(out), "--no-html"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtqa", *args, "--scheduler", cluster.scheduler_address],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # SIGINT reaches the batch only, as on a remote cluster
        )
        try:
            assert _wait_for(lambda: _course_children(token), 60), "the course did not start"
            (course,) = _course_children(token)
            proc.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
            assert _wait_for(lambda: not _alive(course), 5), "the course runs on"
            print(f"course ended {time.monotonic() - interrupted:.2f} s after SIGINT")
            err = proc.communicate(timeout=60)[1]
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "rtqa: interrupted (SIGINT): 0 course(s) with a result, 1 pending" in err
    assert not list((out / "results").glob("*.json"))  # nothing stored, not even as failed
    assert json.loads((out / "summary.json").read_text())["pending"] == 1
    monkeypatch.delenv(TEST_HOOK_ENV)
    again = run_batch(BatchOptions(root=str(root), out=str(out), progress_mode="quiet"))
    assert (again.skipped, again.computed) == (0, 1)  # checked again
    assert [r["status"] for r in again.rows] == ["pass"]


def test_outside_dask_a_course_still_has_its_time_limit_and_crashes_alike(monkeypatch):
    """Outside a worker (or without a name) there is no stop event to poll."""
    from rtqa.batch_exec import _stop_requested, run_in_subprocess
    from rtqa.batch_task import CourseTask

    assert _stop_requested(None)() is False
    assert _stop_requested("rtqa-stop-x")() is False
    monkeypatch.setenv(TEST_HOOK_ENV, "hang:HANG,crash:CRASH")
    start = time.monotonic()
    hung = run_in_subprocess(CourseTask("HANG", (), "0" * 64, "HANG"), 1.0, "rtqa-stop-x")
    assert time.monotonic() - start < 5
    assert (hung.status, hung.error, hung.retry) == (
        "error",
        "stopped after the time limit of 1 s",
        True,
    )
    crashed = run_in_subprocess(CourseTask("CRASH", (), "0" * 64, "CRASH"))
    assert crashed.status == "error" and crashed.retry
    assert crashed.error == "the worker process exited with status 70 before returning a result"
