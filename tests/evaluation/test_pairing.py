"""Pairing: video frames by timestamp (a dropped frame shifts nothing), folders by relative path, faces by box."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from camouflage_video.errors import ConfigError, InputError
from camouflage_video.evaluation import PairedInputs, match_faces
from camouflage_video.frame import Faces
from tests.evaluation.conftest import write_rgb


def write_clip(path: Path, count: int, skip: frozenset[int] = frozenset(), size: tuple[int, int] = (96, 64)) -> Path:
    """A 25 fps clip whose frame ``i`` is a flat grey of level ``4 * i``; frames in ``skip`` are left out."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.time_base = Fraction(1, 25)
        for i in range(count):
            if i in skip:
                continue
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 4 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def levels(pairs: PairedInputs) -> list[tuple[int, int, bool]]:
    return [
        (int(p.original.image.mean() / 4 + 0.5), int(p.anonymized.image.mean() / 4 + 0.5), p.consecutive) for p in pairs
    ]


def test_a_dropped_frame_does_not_shift_the_pairs(tmp_path):
    original = write_clip(tmp_path / "o.mp4", 12)
    anonymized = write_clip(tmp_path / "a.mp4", 12, skip=frozenset({5}))
    with PairedInputs(original, anonymized) as pairs:
        got = levels(pairs)
        assert [o for o, _, _ in got] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
        assert all(o == a for o, a, _ in got)
        # Frame 6 follows frame 4 in the pairs: temporal metrics must not compare them as neighbours.
        assert [c for o, _, c in got if o in (4, 6, 7)] == [True, False, True]
        assert (pairs.pairs, pairs.unpaired_original, pairs.unpaired_anonymized) == (11, 1, 0)
        assert (pairs.frames_original, pairs.frames_anonymized) == (12, 11)


def test_pairing_by_index_takes_frames_in_order(tmp_path):
    original = write_clip(tmp_path / "o.mp4", 6)
    anonymized = write_clip(tmp_path / "a.mp4", 8)
    with PairedInputs(original, anonymized, pair_by="index") as pairs:
        assert [o for o, _, _ in levels(pairs)] == [0, 1, 2, 3, 4, 5]
        assert pairs.unpaired_anonymized == 2


def test_folders_pair_by_relative_path_then_by_name_without_extension(tmp_path):
    grey = np.full((32, 32, 3), 128, np.uint8)
    for key in ("a.png", "sub/b.png", "sub/c.png", "only_original.png"):
        write_rgb(tmp_path / "raw" / key, grey)
    for key in ("a.png", "sub/b.jpg", "sub/c.png", "only_anonymized.png"):
        write_rgb(tmp_path / "anon" / key, grey)
    with PairedInputs(tmp_path / "raw", tmp_path / "anon") as pairs:
        assert [p.key for p in pairs] == ["a.png", "sub/b.png", "sub/c.png"]
        assert pairs.unpaired_keys == ["only_original.png"]
        assert pairs.unpaired_anonymized == 1


def _folder(path: Path, name: str) -> Path:
    write_rgb(path / name, np.zeros((8, 8, 3), np.uint8))
    return path


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (
            lambda d: (write_clip(d / "v.mp4", 3), write_rgb(d / "i.png", np.zeros((64, 96, 3), np.uint8))),
            InputError,
            "cannot compare a video",
        ),
        (lambda d: (write_clip(d / "v.mp4", 3), write_clip(d / "w.mp4", 3, size=(64, 48))), InputError, "64x48"),
        (lambda d: (_folder(d / "x", "a.png"), _folder(d / "y", "b.png")), InputError, "relative path"),
        (lambda d: ("rtsp://127.0.0.1:1/x", d), ConfigError, "record the stream first"),
        (lambda d: (d, d), ConfigError, "pair_by"),
    ],
)
def test_inputs_that_cannot_be_paired(tmp_path, make, error, message):
    original, anonymized = make(tmp_path)
    pair_by = "frames" if message == "pair_by" else "time"
    with pytest.raises(error, match=message), PairedInputs(original, anonymized, pair_by) as pairs:
        list(pairs)


def test_faces_are_matched_by_overlap_best_first():
    original = Faces.from_boxes([[0, 0, 10, 10], [50, 50, 70, 70], [200, 200, 210, 210]])
    anonymized = Faces.from_boxes([[52, 51, 71, 72], [1, 0, 11, 10], [100, 100, 110, 110]])
    assert match_faces(original, anonymized).tolist() == [1, 0, -1]
    assert match_faces(original, Faces.empty()).tolist() == [-1, -1, -1]
