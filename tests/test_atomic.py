"""Files appear whole or not at all: a failed write leaves neither the file nor its temporary."""

from __future__ import annotations

import pytest

from camouflage_video import atomic


def test_a_written_file_is_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "stats.json"
    target.write_text("old")
    atomic.write_text(target, '{"frames": 3}')
    assert target.read_text() == '{"frames": 3}'
    assert [p.name for p in tmp_path.iterdir()] == ["stats.json"]


def test_a_write_that_fails_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_folder_replaces_the_old_folder_whole(tmp_path):
    final = tmp_path / "step-0000010"
    final.mkdir()
    (final / "stale.bin").write_text("x")
    with atomic.atomic_path(final) as temporary:
        temporary.mkdir()
        (temporary / "state.json").write_text("{}")
    assert sorted(p.name for p in final.iterdir()) == ["state.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["step-0000010"]


def test_temporary_names_are_hidden_and_never_shared():
    names = {atomic.temporary_name("/out/a.mp4", ".mp4") for _ in range(100)}
    assert len(names) == 100
    assert all(n.name.startswith(".a.mp4.") and n.suffix == ".mp4" for n in names)


def test_placing_a_file_never_replaces_one_that_is_already_there(tmp_path):
    first, second, final = tmp_path / ".a.partial", tmp_path / ".b.partial", tmp_path / "rec-1.mkv"
    first.write_bytes(b"recovered by one process")
    second.write_bytes(b"recovered by another at the same moment")
    assert atomic.place_new(first, final) and not first.exists()
    assert not atomic.place_new(second, final)  # the name was taken meanwhile: the second keeps its temporary
    assert final.read_bytes() == b"recovered by one process" and second.exists()
