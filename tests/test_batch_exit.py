"""Exit status and summary of ``rtqa batch`` when things go wrong around the checks: options
refused before planning, an output folder that cannot be made, a closed or broken stderr,
SIGINT and SIGTERM in the middle of a run."""

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
from click.testing import CliRunner

from rtqa.cli import cli

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two courses: SPINE3FX (pass) and BONE1FX (major)."""
    r = tmp_path / "root"
    for name in ("spine_3fx", "bone_1fx"):
        shutil.copytree(SAMPLE / name, r / name)
    return r


def _rtqa(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, **kwargs.pop("env", {})}
    env.pop("RTQA_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "rtqa", *args], env=env, **kwargs)


def test_unknown_site_is_refused_before_planning_and_nothing_is_stored(root, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", str(root), "--out", str(out), "--site", "bogus"])
    assert result.exit_code == 2
    assert "--site 'bogus': protocol NRG-BR002 lists" in result.output
    assert not out.exists()


def test_a_known_site_is_accepted(root, tmp_path):
    out = tmp_path / "out"
    args = ["batch", str(root / "spine_3fx"), "--out", str(out), "--site", "spine", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code in (0, 1, 4), result.output
    assert len(list((out / "results").glob("SPINE3FX--*.json"))) == 1


def test_an_output_folder_that_cannot_be_made_is_a_usage_error(root, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = CliRunner().invoke(cli, ["batch", str(root), "--out", str(blocker / "out")])
    assert result.exit_code == 2
    assert f"--out {blocker / 'out'}: cannot create the output folder: Not a directory" in (
        result.output
    )


def test_a_bad_protocol_leaves_no_empty_output_folder(root, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli, ["batch", str(root), "--out", str(out), "--protocol", "no_such_protocol"]
    )
    assert result.exit_code == 2
    assert not out.exists()


def test_a_complete_run_says_so(root, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["batch", str(root), "--out", str(out), "-q"])
    assert result.exit_code == 1  # BONE1FX deviates
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["interrupted"] is None
    assert (summary["exit_code"], summary["results_exit_code"], summary["pending"]) == (1, 1, 0)
    assert "Incomplete" not in (out / "index.html").read_text()


def test_closed_stderr_neither_stops_the_batch_nor_changes_its_exit_code(root, tmp_path):
    out = tmp_path / "out"
    course = root / "spine_3fx"  # passes: exit 0 (a crash on stderr used to give 1)
    cmd = f"exec {sys.executable} -m rtqa batch {course} --out {out} --no-html 2>&-"
    proc = subprocess.run(["sh", "-c", cmd], timeout=300)
    assert proc.returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["with_result"] == 1 and summary["counts"] == {"pass": 1}


def test_broken_stderr_pipe_neither_stops_the_batch_nor_changes_its_exit_code(root, tmp_path):
    out = tmp_path / "out"
    proc = _rtqa(
        "batch",
        str(root / "spine_3fx"),
        "--out",
        str(out),
        "--no-html",
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    proc.stderr.close()  # like `2>&1 | head -0`: every write gets EPIPE
    assert proc.wait(timeout=300) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"pass": 1} and summary["exit_code"] == 0


@pytest.mark.parametrize(
    ("sig", "code", "name"),
    [
        (signal.SIGTERM, 143, "SIGTERM"),
        (signal.SIGINT, 130, "SIGINT"),
    ],
)
def test_a_signal_mid_run_writes_an_incomplete_summary(root, tmp_path, sig, code, name):
    out = tmp_path / "out"
    proc = _rtqa(
        "batch",
        str(root),
        "--out",
        str(out),
        "--workers",
        "2",
        "--no-html",
        env={"RTQA_BATCH_TEST_HOOK": "hang:SPINE3FX"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list((out / "results").glob("BONE1FX--*.json")):  # one done, one hanging
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    time.sleep(0.3)  # let the parent log the result
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == code
    assert (
        f"rtqa: interrupted ({name}): 1 course(s) with a result, 1 pending; incomplete summary"
        in err
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["interrupted"] == name
    assert (summary["exit_code"], summary["results_exit_code"]) == (code, 1)
    assert (summary["with_result"], summary["pending"]) == (1, 1)
    assert [r["course_id"] for r in summary["rows"]] == ["BONE1FX"]
    page = (out / "index.html").read_text()
    assert f"Incomplete: 1 of 2 courses pending, not checked (interrupted by {name})" in page
    assert "1 case(s): 1 major deviation; 1 pending (no result yet)" in page
    assert (out / "summary.csv").read_text().count("\n") == 2  # header and BONE1FX


def _processes_with(token: str) -> dict[int, int]:
    """pid -> parent pid of the processes whose environment holds ``token`` (Linux /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if token.encode() not in (entry / "environ").read_bytes():
                continue
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def _course_children(token: str) -> dict[int, int]:
    """The course interpreters (``python -m rtqa.batch_exec``) among them."""
    out = {}
    for pid, ppid in _processes_with(token).items():
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"rtqa.batch_exec" in cmd:
            out[pid] = ppid
    return out


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_local_cluster_ctrl_c_and_a_killed_worker_leave_no_traceback_and_no_course(root, tmp_path):
    """Ctrl-C at a terminal signals the whole process group: the Dask workers printed
    KeyboardInterrupt tracebacks as they died, and a course whose worker was killed ran on as
    an orphan. Now: a killed worker's course ends with it, Ctrl-C gives the one summary line and
    exit 130, and no course process is left."""
    out = tmp_path / "out"
    token = f"rtqa-test-{os.getpid()}-{time.monotonic_ns()}"
    proc = _rtqa(
        *("batch", str(root), "--out", str(out), "--local-cluster", "--workers", "1"),
        "--no-html",
        env={"RTQA_BATCH_TEST_HOOK": f"hang:SPINE3FX,{token}:none"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        assert _wait_for(lambda: list((out / "results").glob("BONE1FX--*.json")), 180)
        assert _wait_for(lambda: _course_children(token), 60)  # SPINE3FX hangs
        ((course, worker),) = _course_children(token).items()
        os.kill(worker, signal.SIGKILL)
        assert _wait_for(lambda: course not in _processes_with(token), 10)
        time.sleep(1.0)
        os.killpg(proc.pid, signal.SIGINT)
        err = proc.communicate(timeout=120)[1]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "rtqa: interrupted (SIGINT): 1 course(s) with a result, 1 pending" in err
    assert _wait_for(lambda: not _course_children(token), 10)


def test_a_course_whose_worker_died_while_it_started_ends_at_once():
    """The worker passes its pid: a course interpreter whose worker was killed before it read
    its own parent pid (it then reads its new parent's) still sees the worker gone. Here the
    'worker' is this test's own parent process, not the course's parent, and stdin stays open:
    without the pid handed over the course would wait for its task for ever."""
    from rtqa.errors import EXIT_INTERNAL

    proc = subprocess.Popen(
        [sys.executable, "-m", "rtqa.batch_exec", str(os.getppid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.wait(timeout=60) == EXIT_INTERNAL
        assert proc.stderr.read() == b""  # no traceback
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdin.close()
        proc.stderr.close()
