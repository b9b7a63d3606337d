"""The cameras file: checked whole, every mistake one clear line before anything starts, no secret in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from camouflage_video.errors import ConfigError
from camouflage_video.serve.config import camera_from_table, load_config, parse_config, parse_duration

SECRET = "hunter2"


def camera(name: str = "door", **fields: object) -> dict:
    return {"name": name, "input": f"rtsp://admin:{SECRET}@10.0.0.5/stream1", "outputs": ["rtmp://127.0.0.1/live/door"],
            **fields}


def test_top_level_options_are_defaults_and_a_camera_overrides_them(tmp_path: Path) -> None:
    config = parse_config({
        "metrics": "127.0.0.1:9108", "method": "pixelate", "det_size": 480, "verify": False,
        "camera": [camera("door", method="solid", outputs=[str(tmp_path / "door.mp4")], segment="10m"),
                   camera("yard", read_timeout=3, reconnect_delay=0.5, crf=23)],
    })
    door, yard = config.cameras
    assert config.metrics == ("127.0.0.1", 9108)
    assert (door.config.method, door.config.det_size, door.segment) == ("solid", 480, 600.0)
    assert (yard.config.method, yard.config.verify, yard.segment) == ("pixelate", False, None)
    assert yard.stream.read_timeout == 3 and yard.stream.reconnect.initial == 0.5 and yard.config.encoder.crf == 23
    assert camera_from_table(door.table) == door  # what the camera's process is started with
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"camera": [camera(methd="blur")]}, "camera 'door': unknown key 'methd'"),
        ({"metric": "127.0.0.1:9108", "camera": [camera()]}, "unknown key 'metric'"),
        ({"camera": [camera(), camera()]}, "two cameras are named 'door'"),
        ({"camera": [camera(input="ftp://admin:hunter2@10.0.0.5/x")]}, "camera 'door': cannot read ftp:// inputs"),
        ({"camera": [camera(input="recording.mp4")]}, "is not a stream URL"),
        ({"camera": [camera(), camera("yard")]}, "cameras 'door' and 'yard' both write the stream"),
        ({"camera": [camera(outputs=["/tmp/a.mp4"]), camera("yard", outputs=["/tmp/../tmp/a.mp4"])]},
         "both write the file '/tmp/../tmp/a.mp4'"),
        ({"camera": [camera(outputs=["/tmp/a.mp4"]), camera("yard", outputs=["/tmp/a-1.mp4"])]},
         "both write the file '/tmp/a-1.mp4'"),  # door's second run writes a-1.mp4
        ({"camera": [camera(outputs=["/tmp/a.mp4"], segment="10m"),
                     camera("yard", outputs=["/tmp/a_20261202-014000.mp4"])]},
         "both write the file '/tmp/a_20261202-014000.mp4'"),  # a name of one of door's segments
        ({"camera": [camera(outputs=["/tmp/a.mp4", "/tmp/a.mp4"])]},
         "camera 'door' writes the file '/tmp/a.mp4' twice"),
        ({"camera": [camera(outputs=["/no/such/folder/a.mp4"])]}, "the folder '/no/such/folder' does not exist"),
        ({"camera": [camera(outputs=["/tmp/a.avi"])]}, "needs one of the extensions"),
        ({"camera": [camera(outputs=["ftp://h/x"])]}, "cannot stream to ftp://"),
        ({"camera": [camera(outputs=[])]}, "outputs must be a list"),
        ({"camera": [camera(name="front door")]}, "name must be letters"),
        ({"camera": [camera(method="wobble")]}, "camera 'door': method must be one of blur, pixelate, solid"),
        ({"camera": [camera(method="base")]}, "for live cameras"),
        ({"camera": [camera(thresh="high")]}, "thresh must be int or float"),
        ({"camera": [camera(track="yes")]}, "track must be bool"),
        ({"camera": [camera(segment="soon")]}, "segment: expected a duration"),
        ({"camera": [camera(segment="0.5s")]}, "segment must be at least 1 s"),
        ({"metrics": "9108", "camera": [camera()]}, "metrics must be \"HOST:PORT\""),
        ({"camera": []}, "no cameras"),
        ({}, "no cameras"),
    ],
)
def test_a_bad_cameras_file_is_one_clear_error_without_secrets(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "cameras.toml")
    assert message in str(caught.value) and str(caught.value).startswith("cameras.toml: ")
    assert SECRET not in str(caught.value) and "\n" not in str(caught.value)


def test_recordings_whose_names_only_look_alike_are_accepted(tmp_path: Path) -> None:
    config = parse_config({"camera": [
        camera("door", outputs=[str(tmp_path / "door.mp4")]),
        camera("bell", outputs=[str(tmp_path / "doorbell.mp4"), str(tmp_path / "door.mkv")]),
        camera("hall", input="rtsp://10.0.0.6/s", outputs=[str(tmp_path / "door-x.mp4")], segment="10m"),
    ]})
    assert [c.name for c in config.cameras] == ["door", "bell", "hall"]


def test_a_cameras_file_is_read_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "cameras.toml"
    path.write_text('metrics = "127.0.0.1:0"\n[[camera]]\nname = "door"\ninput = "rtsp://10.0.0.5/s"\n'
                    f'outputs = ["{tmp_path}/door.mp4"]\nsegment = "90s"\n')
    config = load_config(path)
    assert config.cameras[0].segment == 90.0 and config.path == str(path)


@pytest.mark.parametrize(("text", "message"), [("[[camera]\n", "not valid TOML"), (None, "no such cameras file")])
def test_an_unreadable_cameras_file_is_one_line(tmp_path: Path, text: str | None, message: str) -> None:
    path = tmp_path / "cameras.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize(("value", "seconds"), [("10m", 600), ("90s", 90), ("1h", 3600), ("1.5m", 90), (30, 30)])
def test_segment_lengths_read_as_durations(value: object, seconds: float) -> None:
    assert parse_duration(value, "segment") == seconds
