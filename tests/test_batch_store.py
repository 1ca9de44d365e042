"""Content keys and atomic result files of ``rtqa batch`` (no pipeline needed)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from rtqa.batch_store import (
    KEY_CHARS,
    ResultStore,
    atomic_write_text,
    course_key,
    file_digest,
    key_from_digests,
)


def _write(path, data: bytes):
    path.write_bytes(data)
    return str(path)


def test_file_digest_is_sha256_of_contents(tmp_path):
    data = os.urandom(3 << 20)  # spans several read blocks
    path = _write(tmp_path / "a.dcm", data)
    assert file_digest(path) == hashlib.sha256(data).hexdigest()


def test_course_key_depends_on_contents_protocol_and_version_not_names(tmp_path):
    a = _write(tmp_path / "a", b"plan")
    b = _write(tmp_path / "b", b"dose")
    proto = _write(tmp_path / "p.yaml", b"protocol: X\n")
    key = course_key([a, b], proto, "1.0")
    # order and names do not matter
    (tmp_path / "sub").mkdir()
    b2 = _write(tmp_path / "sub" / "renamed", b"dose")
    assert course_key([b2, a], proto, "1.0") == key
    # independent computation of the same definition
    h = hashlib.sha256()
    for d in sorted(hashlib.sha256(x).hexdigest() for x in (b"plan", b"dose")):
        h.update(b"file:" + d.encode() + b"\n")
    h.update(b"protocol:" + hashlib.sha256(b"protocol: X\n").hexdigest().encode() + b"\n")
    h.update(b"rtqa:1.0\nextra:\n")
    assert key == h.hexdigest()
    # any change of content, protocol, version or options changes the key
    _write(tmp_path / "b", b"dose!")
    assert course_key([a, b], proto, "1.0") != key
    _write(tmp_path / "b", b"dose")
    assert course_key([a, b], proto, "1.1") != key
    assert course_key([a, b], proto, "1.0", extra="fail_on=major") != key
    _write(tmp_path / "p.yaml", b"protocol: Y\n")
    assert course_key([a, b], proto, "1.0") != key


def test_atomic_write_replaces_whole_file_and_leaves_no_temp_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_text(target, "old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_store_lists_done_and_failed_and_prepare_removes_temp_files(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    k1, k2 = "a" * 64, "b" * 64
    store.write("C1", k1, json.dumps({"x": 1}), failed=True)
    store.write("C2", k2, "{}")
    (store.results_dir / ".tmp-abc.part").write_text("{half")
    (store.results_dir / "notes.txt").write_text("ignored")
    found = store.stored()
    assert set(found) == {k1[:KEY_CHARS], k2[:KEY_CHARS]}
    assert found[k1[:KEY_CHARS]].failed and not found[k2[:KEY_CHARS]].failed
    # a done result replaces the failed one of the same key
    store.write("C1", k1, "{}")
    assert not store.stored()[k1[:KEY_CHARS]].failed
    assert not store.path_for("C1", k1, failed=True).exists()
    assert store.prepare() == 1
    assert not list(store.results_dir.glob(".tmp-*"))


def test_key_from_digests_is_order_free():
    assert key_from_digests(["1", "2"], "p", "v") == key_from_digests(["2", "1"], "p", "v")
    assert key_from_digests(["1", "2"], "p", "v") != key_from_digests(["1", "3"], "p", "v")
