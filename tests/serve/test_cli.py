"""``camouflage-video serve`` on the command line: a bad cameras file is one line and exit code 1."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli

SECRET = "hunter2"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.toml"
    path.write_text(text)
    return path


def test_a_bad_cameras_file_is_one_line_and_nothing_starts(tmp_path: Path) -> None:
    path = write(tmp_path, f'[[camera]]\nname = "door"\ninput = "rtsp://admin:{SECRET}@10.0.0.5/s"\n'
                           f'outputs = ["{tmp_path}/door.mp4"]\n[[camera]]\nname = "door"\n'
                           f'input = "rtsp://admin:{SECRET}@10.0.0.6/s"\noutputs = ["{tmp_path}/yard.mp4"]\n')
    result = run_cli("serve", str(path), timeout=60)
    assert result.returncode == 1
    expected = f"camouflage-video: error: {path}: two cameras are named 'door'; names must be unique"
    assert result.stderr.strip() == expected
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_check_reads_the_file_and_starts_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, f'metrics = "127.0.0.1:9108"\nverify = false\n[[camera]]\nname = "door"\n'
                           f'input = "rtsp://admin:{SECRET}@10.0.0.5/s"\noutputs = ["{tmp_path}/door.mp4"]\n')
    result = run_cli("serve", str(path), "--check", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "1 camera (door); metrics at http://127.0.0.1:9108/metrics" in result.stderr
    assert SECRET not in result.stderr


def test_a_missing_cameras_file_is_named(tmp_path: Path) -> None:
    result = run_cli("serve", str(tmp_path / "nope.toml"), timeout=60)
    assert result.returncode == 1 and "nope.toml: no such cameras file" in result.stderr
