"""Result files of ``rtqa batch``: content keys and atomic writes.

Each course's result is stored under ``OUT/results/`` in a file whose name ends with the course's
**key**: the SHA-256 of the course's input files (their contents, sorted), the protocol file and
the rtqa version (plus any option that changes the result, e.g. the pseudonymisation key's
fingerprint). A rerun finds the keys already present and skips those courses.

Files are written atomically: a temporary file in the same folder, flushed and ``fsync``-ed, then
``os.replace``-d over the final name, and the folder ``fsync``-ed. An interrupted run (Ctrl-C,
SIGKILL, power loss) therefore leaves either the complete result or none, never half of one;
stray temporary files are removed on the next run.

A course that failed for a reason that may not recur (its worker died or it ran past
``--timeout``) is stored as ``*.failed.json``: it is shown in the summary and retried by the
next run. Everything else (results, and inputs that could not be read) is ``*.json``: done.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS_DIR = "results"
FAILED_SUFFIX = ".failed.json"
DONE_SUFFIX = ".json"
TEMP_PREFIX = ".tmp-"
KEY_CHARS = 20  # hex characters of the key in a file name (80 bits)

_NAME = re.compile(
    rf"^(?P<stem>.+)--(?P<key>[0-9a-f]{{{KEY_CHARS}}})(?P<suffix>\.failed\.json|\.json)$"
)
_BLOCK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 (lower-case hex) of one file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_BLOCK):
            h.update(chunk)
    return h.hexdigest()


def course_key(
    files: Iterable[str | os.PathLike[str]],
    protocol_file: str | os.PathLike[str] | None,
    version: str,
    extra: str = "",
) -> str:
    """SHA-256 of a course's inputs: file contents (order-free), protocol file, version, ``extra``.

    File names do not enter the key, so moving or renaming the input folder keeps the results.
    """
    protocol = file_digest(protocol_file) if protocol_file is not None else ""
    return key_from_digests([file_digest(p) for p in files], protocol, version, extra)


def key_from_digests(
    file_digests: Iterable[str], protocol_digest: str, version: str, extra: str = ""
) -> str:
    """:func:`course_key` from SHA-256 digests already computed."""
    h = hashlib.sha256()
    for digest in sorted(file_digests):
        h.update(b"file:" + digest.encode() + b"\n")
    h.update(b"protocol:" + protocol_digest.encode() + b"\n")
    h.update(b"rtqa:" + version.encode() + b"\n")
    h.update(b"extra:" + extra.encode() + b"\n")
    return h.hexdigest()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so that readers see all of it or the old file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredResult:
    """One result file: its path, the course key it ends with, and whether it is to be retried."""

    path: Path
    key: str
    failed: bool

    def load(self) -> dict[str, Any]:
        return json.loads(self.path.read_text("utf-8"))


class ResultStore:
    """The result files of one output folder (``OUT/results``)."""

    def __init__(self, out_dir: str | os.PathLike[str]):
        self.out_dir = Path(out_dir)
        self.results_dir = self.out_dir / RESULTS_DIR

    def prepare(self) -> int:
        """Create the folders and remove temporary files left by an interrupted run (count)."""
        self.results_dir.mkdir(parents=True, exist_ok=True)
        removed = 0
        for folder in (self.out_dir, self.results_dir):
            for stray in folder.glob(TEMP_PREFIX + "*"):
                stray.unlink(missing_ok=True)
                removed += 1
        return removed

    def stored(self) -> dict[str, StoredResult]:
        """Every result file by short key; a done result wins over a failed one."""
        found: dict[str, StoredResult] = {}
        if not self.results_dir.is_dir():
            return found
        for path in sorted(self.results_dir.iterdir()):
            m = _NAME.match(path.name)
            if not m:
                continue
            item = StoredResult(path, m["key"], m["suffix"] == FAILED_SUFFIX)
            if item.key not in found or found[item.key].failed:
                found[item.key] = item
        return found

    def path_for(self, stem: str, key: str, *, failed: bool = False) -> Path:
        suffix = FAILED_SUFFIX if failed else DONE_SUFFIX
        return self.results_dir / f"{stem}--{key[:KEY_CHARS]}{suffix}"

    def write(self, stem: str, key: str, text: str, *, failed: bool = False) -> Path:
        """Store one course's result atomically; a done result replaces a failed one."""
        path = self.path_for(stem, key, failed=failed)
        atomic_write_text(path, text)
        if not failed:
            self.path_for(stem, key, failed=True).unlink(missing_ok=True)
        return path

    def remove(self, key: str) -> None:
        """Forget every stored result of ``key`` (for ``--force``)."""
        for path in list(self.results_dir.glob(f"*--{key[:KEY_CHARS]}*")):
            if _NAME.match(path.name):
                path.unlink(missing_ok=True)
