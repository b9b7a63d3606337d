"""The evaluation example keeps running and says what it found."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_evaluate_anonymization_example(sample_clip, tmp_path):
    report = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "evaluate_anonymization.py"), str(sample_clip), str(report)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "10 faces, re-identified 0%, 0 leaks" in result.stdout
    assert report.read_text().startswith("<!DOCTYPE html>")
