"""tracks.json out, a reviewer's regions.json in, and re-rendering from a reviewed tracks file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from camouflage_video.api import anonymize
from camouflage_video.config import AnonymizeConfig
from camouflage_video.errors import ConfigError
from camouflage_video.redaction.files import STATES, TracksWriter, load_tracks
from tests.conftest import media_file
from tests.redaction.conftest import ALEX, KIT, compose, face_in, identity_left, read_frames, side_by_side

LEFT, RIGHT = (0, 320), (320, 640)
EMPTY_CORNER = [560, 250, 630, 350]  # a shoulder of the right-hand portrait, no face


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = tmp_path_factory.mktemp("tracks")
    clip = folder / "clip.mp4"
    originals = compose(clip, side_by_side(KIT[0], ALEX[0]))
    config = AnonymizeConfig(keep_person=(str(media_file(KIT[1])),), tracks_out=str(folder / "tracks.json"))
    anonymize(clip, folder / "out.mp4", config)
    return folder, clip, originals


def _write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def kept_track(tracks: dict) -> int:
    ids = {f["track"] for frame in tracks["frames"] for f in frame["faces"] if f["decision"] == "kept"}
    ids.discard(-1)
    assert len(ids) == 1
    return ids.pop()


def test_the_tracks_file_lists_every_frame_with_boxes_states_decisions_and_methods(first_run):
    folder, _, originals = first_run
    tracks = json.loads((folder / "tracks.json").read_text())
    assert tracks["version"] == 1 and tracks["mode"] == "keep" and tracks["method"] == "blur"
    assert tracks["video"]["width"] == 640 and tracks["video"]["frame_count"] == len(originals)
    assert [f["frame"] for f in tracks["frames"]] == list(range(len(originals)))
    for frame in tracks["frames"]:
        for face in frame["faces"]:
            assert face["state"] in STATES and face["decision"] in ("kept", "removed")
            assert len(face["box"]) == 4 and isinstance(face["track"], int)
    assert not list(folder.glob(".tracks.json*")), "the temporary file is renamed, not left behind"


def test_a_rerender_from_the_tracks_file_does_not_detect_and_keeps_the_same_decisions(first_run, recognizer,
                                                                                       detector):
    folder, clip, originals = first_run
    stats = anonymize(clip, folder / "again.mp4", AnonymizeConfig(tracks_in=str(folder / "tracks.json")))
    assert "detect" not in stats.annotators and "replay" in stats.annotators
    first, again = read_frames(folder / "out.mp4"), read_frames(folder / "again.mp4")
    for original, a, b in zip(originals, first, again, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.0
        assert identity_left(recognizer, original, b, face_in(detector, original, LEFT))[0] < 0.25


def test_a_region_is_covered_in_its_frames_only(first_run, tmp_path: Path):
    folder, clip, originals = first_run
    regions = _write(tmp_path / "regions.json", {"version": 1, "regions": [
        {"id": "badge", "frames": [3, 7], "box": EMPTY_CORNER, "cover": "solid"}]})
    stats = anonymize(clip, tmp_path / "out.mp4",
                      AnonymizeConfig(tracks_in=str(folder / "tracks.json"), regions=regions))
    x1, y1, x2, y2 = EMPTY_CORNER
    for i, (original, frame) in enumerate(zip(originals, read_frames(tmp_path / "out.mp4"), strict=True)):
        patch = frame[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].astype(int)
        if 3 <= i <= 7:
            assert patch.max() < 20, f"frame {i}: region not covered"
        else:
            before = original[y1 + 2 : y2 - 2, x1 + 2 : x2 - 2].astype(int)
            assert np.abs(patch - before).mean() < 5, f"frame {i}: region covered outside its frames"
    assert stats.to_dict()["model"]["redaction"]["region_frames"] == {"badge": 5}


def test_a_region_with_the_methods_cover_takes_the_blur_and_a_polygon_is_filled(first_run, tmp_path: Path):
    folder, clip, originals = first_run
    regions = _write(tmp_path / "regions.json", {"regions": [
        {"id": "screen", "frames": [0, 11], "polygon": [[20, 20], [300, 20], [300, 350], [20, 350]]}]})
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=str(folder / "tracks.json"), regions=regions))
    for frame in read_frames(tmp_path / "out.mp4"):
        assert frame[25:345, 25:295].max() < 20  # the kept face under it is covered too: regions win


def test_a_reviewer_can_remove_the_kept_track(first_run, tmp_path: Path, recognizer, detector):
    folder, clip, originals = first_run
    track = kept_track(json.loads((folder / "tracks.json").read_text()))
    regions = _write(tmp_path / "regions.json", {"tracks": [{"track": track, "action": "removed", "frames": [4, 11]}]})
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=str(folder / "tracks.json"), regions=regions))
    for i, (original, output) in enumerate(zip(originals, read_frames(tmp_path / "out.mp4"), strict=True)):
        distance, recovery = identity_left(recognizer, original, output, face_in(detector, original, LEFT))
        if i >= 4:
            assert not (distance < recognizer.threshold and recovery >= 0.5), f"frame {i}"
        elif i >= 1:  # frame 0's face had no track id yet
            assert distance < 0.25


def test_a_reviewer_keeps_a_track_only_where_it_was_detected(first_run, tmp_path: Path):
    folder, clip, _ = first_run
    tracks = json.loads((folder / "tracks.json").read_text())
    other = next(f["track"] for f in tracks["frames"][5]["faces"] if f["decision"] == "removed" and f["track"] >= 0)
    # Pretend frame 5's box of that track was held, not detected: the override must not show it there.
    for face in tracks["frames"][5]["faces"]:
        if face["track"] == other:
            face["state"] = "held"
    edited = _write(tmp_path / "tracks.json", tracks)
    regions = _write(tmp_path / "regions.json", {"tracks": [{"track": other, "action": "kept"}]})
    anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=edited, regions=regions,
                                                          tracks_out=str(tmp_path / "after.json")))
    after = json.loads((tmp_path / "after.json").read_text())
    decisions = [next(f["decision"] for f in frame["faces"] if f["track"] == other)
                 for frame in after["frames"] if any(f["track"] == other for f in frame["faces"])]
    assert decisions[4] == "removed" and decisions.count("kept") == len(decisions) - 1


def test_a_frame_missing_from_the_tracks_file_goes_out_as_the_fallback(first_run, tmp_path: Path):
    folder, clip, originals = first_run
    tracks = json.loads((folder / "tracks.json").read_text())
    del tracks["frames"][2]
    stats = anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=_write(tmp_path / "t.json", tracks)))
    assert stats.fallback_frames == 1


# -- bad files: one line, before any work ---------------------------------------------------------------


@pytest.mark.parametrize(("regions", "message"), [
    ('{"regions": [', "not valid JSON"),
    ({"regions": [{"frames": [3, 40], "box": [1, 1, 50, 50]}]}, "go past the video's last frame 11"),
    ({"regions": [{"frames": [3, 4], "box": [1, 1, 50]}]}, r"regions\[0\].box: must be \[x1, y1, x2, y2\]"),
    ({"regions": [{"frames": [3, 4], "box": [700, 400, 900, 500]}]}, "outside the 640x360 picture"),
    ({"regions": [{"frames": [3, 4], "boxes": [1, 1, 5, 5]}]}, "unknown key"),
    # Out to "infinity": the covering arithmetic overflowed and such a region covered nothing.
    ({"regions": [{"frames": [3, 4], "box": [-1e39, 0, 100, 360]}]}, r"within \+-1000000 px"),
    ({"regions": [{"frames": [3, 4], "polygon": [[0, 0], [1e10, 0], [0, 1e10]]}]}, r"within \+-1000000 px"),
    # A screen's corners with two swapped: filled, the crossed polygon covered half of the screen.
    ({"regions": [{"frames": [3, 4], "polygon": [[20, 20], [300, 25], [25, 190], [290, 200]]}]}, "edges cross"),
    ({"tracks": [{"track": 999, "action": "removed"}]}, "unknown track id 999"),
    ({"tracks": [{"track": 0, "action": "blur"}]}, "must be one of kept, removed"),
])
def test_a_bad_regions_file_is_a_one_line_error_before_any_output(first_run, tmp_path: Path, regions, message):
    folder, clip, _ = first_run
    path = _write(tmp_path / "regions.json", regions)
    with pytest.raises(ConfigError, match=message) as caught:
        anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=str(folder / "tracks.json"), regions=path,
                                                              tracks_out=str(tmp_path / "t.json")))
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["regions.json"]


def test_forcing_tracks_needs_the_tracks_file_they_come_from(first_run, tmp_path: Path):
    _, clip, _ = first_run
    path = _write(tmp_path / "regions.json", {"tracks": [{"track": 1, "action": "kept"}]})
    with pytest.raises(ConfigError, match="--tracks-in"):
        anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(regions=path))


def test_a_tracks_file_of_another_video_is_refused(first_run, tmp_path: Path, sample_clip):
    folder, _, _ = first_run
    tracks = json.loads((folder / "tracks.json").read_text())
    tracks["video"]["frame_count"] = 50
    for n in range(12, 50):
        tracks["frames"].append({"frame": n, "faces": []})
    path = _write(tmp_path / "t.json", tracks)
    load_tracks(path)
    with pytest.raises(ConfigError, match="made from a video of 50 frames"):
        anonymize(folder / "clip.mp4", tmp_path / "out.mp4", AnonymizeConfig(tracks_in=path))


def test_a_tracks_file_of_another_video_of_the_same_size_and_length_is_refused(first_run, tmp_path: Path):
    # A re-cut or a mixed-up file name: the same format, other people. Replaying the first clip's boxes would
    # leave every face of this one uncovered; the file's digest of its video refuses it, for the review page too.
    from camouflage_video.redaction.review import render_review

    folder, _, originals = first_run
    other = tmp_path / "other.mp4"
    compose(other, side_by_side(ALEX[0], KIT[0]), frames=len(originals))
    for run in (lambda: anonymize(other, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=str(folder / "tracks.json"))),
                lambda: render_review(other, folder / "tracks.json", tmp_path / "review.html")):
        with pytest.raises(ConfigError, match="made from another video file"):
            run()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.mp4"]


def test_a_tracks_file_that_does_not_name_its_video_file_is_refused(first_run, tmp_path: Path):
    folder, clip, _ = first_run
    tracks = json.loads((folder / "tracks.json").read_text())
    assert len(tracks["video"].pop("sha256")) == 64
    path = _write(tmp_path / "t.json", tracks)
    with pytest.raises(ConfigError, match="says nothing of the video file it was made from"):
        anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=path))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t["frames"][0]["faces"][0].update(state="guessed"), "must be one of detected, held, backfilled"),
    (lambda t: t["frames"].append({"frame": 30, "faces": []}), "frame 30 is outside the video"),
    (lambda t: t.pop("video"), "missing video"),
    (lambda t: t["frames"][0]["faces"][0].update(box=[-1e39, 0, 100, 100]), r"within \+-1000000 px"),
])
def test_a_bad_tracks_file_is_a_one_line_error(first_run, tmp_path: Path, edit, message):
    folder, _, _ = first_run
    tracks = json.loads((folder / "tracks.json").read_text())
    edit(tracks)
    with pytest.raises(ConfigError, match=message):
        load_tracks(_write(tmp_path / "t.json", tracks))


def test_the_tracks_file_appears_only_when_the_run_completes(tmp_path: Path):
    writer = TracksWriter(tmp_path / "tracks.json", {"version": 1})
    writer.write({"frame": 0, "faces": []})
    assert not (tmp_path / "tracks.json").exists()
    writer.close(completed=False)
    assert list(tmp_path.iterdir()) == []
    writer = TracksWriter(tmp_path / "tracks.json", {"version": 1})
    writer.write({"frame": 1, "faces": []})
    writer.close(completed=True, video={"width": 8, "height": 8, "frame_count": 3})
    data = json.loads((tmp_path / "tracks.json").read_text())
    assert data["frames"] == [{"frame": 0, "fallback": True}, {"frame": 1, "faces": []},
                              {"frame": 2, "fallback": True}]
    assert data["video"]["frame_count"] == 3


def test_no_tracks_file_is_left_when_the_video_fails_to_close(first_run, tmp_path: Path, monkeypatch):
    # The tracks file describes the video: it takes its final name only once the video has taken its own.
    from camouflage_video.sinks.video import VideoFileSink

    _, clip, _ = first_run
    seen = {}

    def failing_close(self, *, interrupted: bool = False, end: float | None = None) -> None:
        seen["tracks_before_the_video"] = (tmp_path / "tracks.json").exists()
        raise OSError(28, "No space left on device")  # what a full disk does to the last write

    monkeypatch.setattr(VideoFileSink, "close", failing_close)
    with pytest.raises(OSError, match="No space"):
        anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_out=str(tmp_path / "tracks.json")))
    assert seen == {"tracks_before_the_video": False}
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither file, no temporary left behind


def test_a_rerender_with_keep_person_judges_the_replayed_faces_again(first_run, tmp_path: Path):
    folder, clip, _ = first_run
    config = AnonymizeConfig(tracks_in=str(folder / "tracks.json"), keep_person=(str(media_file(ALEX[1])),),
                             tracks_out=str(tmp_path / "again.json"))
    anonymize(clip, tmp_path / "out.mp4", config)
    again = json.loads((tmp_path / "again.json").read_text())
    for frame in again["frames"]:
        kept = [f for f in frame["faces"] if f["decision"] == "kept"]
        assert len(kept) == 1 and kept[0]["box"][0] > 320 and kept[0]["why"].startswith("match")


@pytest.mark.parametrize(("header", "message"), [
    ({"mask_scale": 2.0}, "made with --mask-scale 2; 1.3 would cover less"),
    ({"shape": "box"}, "pass --shape box"),
])
def test_a_rerender_covers_at_least_as_much_as_the_run_that_made_the_file(first_run, tmp_path: Path, header,
                                                                          message):
    folder, clip, _ = first_run
    tracks = json.loads((folder / "tracks.json").read_text())
    assert tracks["mask_scale"] == 1.3 and tracks["shape"] == "ellipse"
    tracks.update(header)
    with pytest.raises(ConfigError, match=message):
        anonymize(clip, tmp_path / "out.mp4", AnonymizeConfig(tracks_in=_write(tmp_path / "t.json", tracks)))
    assert not (tmp_path / "out.mp4").exists()
