"""Anonymize a folder of photos, mirroring its tree, with pixelation and box masks.

    python examples/anonymize_folder.py photos/ photos_anonymized/
"""

from __future__ import annotations

import sys

from camouflage_video import AnonymizeConfig, anonymize

if __name__ == "__main__":
    config = AnonymizeConfig(method="pixelate", shape="box", mask_scale=1.4, det_size=0)  # full-res detection
    stats = anonymize(sys.argv[1], sys.argv[2], config, progress=True)
    print(f"{stats.frames_out} images, {stats.faces_detected} faces, {stats.corrupt_frames} unreadable skipped")
