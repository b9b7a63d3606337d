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


def test_outputs_with_the_longest_names_a_file_system_takes_are_written(tmp_path, astronaut) -> None:
    """A temporary's name adds about 30 bytes: a 250-byte output name must not fail for its temporary's sake."""
    import cv2

    from tests.conftest import run_cli

    photo = tmp_path / "in.png"
    cv2.imwrite(str(photo), astronaut[..., ::-1])
    image, stats = tmp_path / ("I" * 246 + ".jpg"), tmp_path / ("S" * 245 + ".json")
    result = run_cli("anonymize", str(photo), "-o", str(image), "--stats", str(stats), "-q")
    assert result.returncode == 0, result.stderr
    assert image.is_file() and stats.is_file() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("length", [5, 240])
def test_a_file_name_that_is_not_utf8_is_written(tmp_path, astronaut, length) -> None:
    """Latin-1 names, as old archives and network shares leave them: bytes the file system takes as they are."""
    import os

    import cv2

    from tests.conftest import run_cli

    name = b"caf\xe9" * (length // 4) + b".jpg"
    photo = os.fsdecode(os.path.join(os.fsencode(tmp_path), name))
    cv2.imencode(".jpg", astronaut[..., ::-1])[1].tofile(photo)
    output = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"out_" + name))
    result = run_cli("anonymize", photo, "-o", output, "-q")
    assert result.returncode == 0, result.stderr
    assert os.path.isfile(output) and sorted(os.listdir(os.fsencode(tmp_path))) == sorted([name, b"out_" + name])
