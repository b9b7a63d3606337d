"""``camouflage-video serve``: many cameras in one service, each in a process of its own, with metrics.

- :mod:`~camouflage_video.serve.config`: the cameras file, checked whole before anything starts;
- :mod:`~camouflage_video.serve.service`: starts, watches and restarts one process per camera, stops them
  in order, serves ``/metrics``;
- :mod:`~camouflage_video.serve.camera`: what runs in a camera's process;
- :mod:`~camouflage_video.serve.metrics`: the Prometheus text format page.

Examples:
    >>> from camouflage_video.serve import load_config, serve
    >>> serve(load_config("cameras.toml"))  # doctest: +SKIP
"""

from __future__ import annotations

from camouflage_video.serve.config import CameraConfig, ServeConfig, load_config, parse_config
from camouflage_video.serve.service import serve

__all__ = ["CameraConfig", "ServeConfig", "load_config", "parse_config", "serve"]
