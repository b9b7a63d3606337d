"""Image and image-folder outputs: all or nothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from camouflage_video.errors import OutputError
from camouflage_video.sinks import ImageFolderSink
from tests.conftest import run_cli


def _folder(tmp_path, astronaut, names):
    root = tmp_path / "photos"
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), astronaut[..., ::-1])
    return root


def test_a_failed_folder_run_leaves_no_image_behind(tmp_path, astronaut):
    """The third image fails with --on-error fail: nothing of the run may remain in the output."""
    from camouflage_video.errors import ProcessingError
    from camouflage_video.pipelines.classic import ClassicObfuscator
    from camouflage_video.runner import Runner
    from camouflage_video.sources import ImageFolderSource
    from tests.fakes import FailOn

    root = _folder(tmp_path, astronaut, ["a.jpg", "b.jpg", "c.jpg", "d/e.jpg"])
    out = tmp_path / "out"
    with ImageFolderSource(root) as src:
        sink = ImageFolderSink(out)
        with pytest.raises(ProcessingError):
            Runner(src, [sink], [FailOn({2})], ClassicObfuscator(), on_error="fail").run()
    assert not out.exists()


def test_a_folder_in_the_way_of_an_image_is_one_clear_error(tmp_path, astronaut):
    root = _folder(tmp_path, astronaut, ["a.jpg", "trip.jpg"])
    out = tmp_path / "out"
    (out / "trip.jpg").mkdir(parents=True)  # a folder where an image must go
    result = run_cli("anonymize", str(root), "-o", str(out), "-q")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1 and "trip.jpg" in line and "Traceback" not in line
    assert sorted(p.name for p in out.rglob("*")) == ["trip.jpg"]  # a.jpg not published either


def test_a_staging_folder_of_a_killed_run_is_cleaned_up(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "out" / f".camouflage-staging-{int(dead.stdout)}-0123abcd"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "x.jpg").write_bytes(b"anonymized but never published")
    sink = ImageFolderSink(tmp_path / "out")
    sink.close()
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("interrupted", [False, True])
def test_closing_publishes_every_image_written(tmp_path, interrupted):
    from camouflage_video.frame import Frame

    sink = ImageFolderSink(tmp_path / "out")
    for i, key in enumerate(["a.png", "deep/er/b.png"]):
        frame = Frame(np.zeros((8, 8, 3), np.uint8), index=i, key=key)
        sink.write(frame, np.full((8, 8, 3), 9, np.uint8))
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == []
    sink.close(interrupted=interrupted)
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == ["a.png", "deep/er/b.png"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_an_output_folder_under_a_dangling_link_names_the_link(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "gone")
    with pytest.raises(OutputError, match="link: a symbolic link to .*gone, which does not exist"):
        ImageFolderSink(link / "new")


def test_an_image_that_does_not_fit_on_the_disk_is_refused_not_published_cut_short(small_disk) -> None:
    """Every whole 4 KiB page of the image fits, its last few bytes do not: the write that fails is the last
    one, made when the file is closed."""
    from camouflage_video.sinks.images import write_image

    disk = small_disk(1 << 20)
    image = np.random.default_rng(0).integers(0, 256, (90, 110, 3), np.uint8)
    size = len(cv2.imencode(".png", image)[1])
    assert size % 4096, "the image must end in a partial page"
    (disk / "filler").write_bytes(b"\0" * ((1 << 20) - size // 4096 * 4096))
    with pytest.raises(OutputError, match="out.png: cannot write .No space left on device"):
        write_image(disk / "out.png", image)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    (disk / "filler").unlink()
    write_image(disk / "out.png", image)  # with room, the same image is written whole
    assert np.array_equal(cv2.imread(str(disk / "out.png"))[..., ::-1], image)
