"""Anonymize one video file with the Python API and print what happened.

    python examples/anonymize_file.py street.mp4 [street_blurred.mp4]
"""

from __future__ import annotations

import sys

from camouflage_video import anonymize

if __name__ == "__main__":
    source = sys.argv[1]
    output = sys.argv[2] if len(sys.argv) > 2 else None
    stats = anonymize(source, output, method="blur", mask_scale=1.3, progress=True)
    print(f"{stats.frames_out} frames, {stats.faces_detected} faces, {stats.fallback_frames} fallback frames")
    print(f"written to {stats.outputs[0]['uri']}")
