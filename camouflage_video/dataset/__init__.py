"""Folder-to-folder anonymization of video and image datasets, with a manifest and crash-safe resume.

``run_dataset("raw/", "anonymized/")`` mirrors the tree, records every input in
``anonymized/camouflage_manifest.jsonl`` and, run again, does only what is left. Work runs in local
worker processes or, with ``DatasetOptions(engine="ray")``, on a Ray cluster.
"""

from __future__ import annotations

from camouflage_video.dataset.driver import DatasetOptions, DatasetSummary, run_dataset
from camouflage_video.dataset.manifest import MANIFEST_NAME, config_hash, latest_records, read_manifest

__all__ = [
    "MANIFEST_NAME",
    "DatasetOptions",
    "DatasetSummary",
    "config_hash",
    "latest_records",
    "read_manifest",
    "run_dataset",
]
