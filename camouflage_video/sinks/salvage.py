"""What of a recording's file reads back whole, published once it is checked to play.

A recording is written so that a writer killed at any instant leaves a playable prefix (``video.recording_options``):
an MP4/MOV one in one-second fragments, a Matroska/WebM one a cluster a second. :func:`salvage_recording` cuts such
a file after its last complete fragment, or copies its packets up to the first torn one, checks that the result
plays and publishes it under a free name, never over a file. It serves a killed writer's recovery
(``segments.recover_stale_segments``) and a writer whose own writing failed (``video.VideoFileSink``).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import av

from camouflage_video.atomic import place_new
from camouflage_video.interrupts import interrupts_deferred
from camouflage_video.sinks.base import temporary_path

#: Containers written in fragments (see ``video.FRAGMENTED``) and those written a cluster a second.
FRAGMENTED_FORMATS = ("mp4", "mov")
CLUSTERED_FORMATS = ("matroska", "webm")


def salvage_recording(temporary: Path, name: Path, kind: str, spare: Path | None = None) -> Path | None:
    """Publish what of a recording's ``temporary`` reads back whole (an MP4/MOV cut after its last complete
    fragment, the packets of a Matroska/WebM file up to the first torn one), once it is checked to play, under
    the first free name of ``name``'s (``name``, ``<stem>-1``, ...; never ``spare``, never over a file). The
    name it took; ``None``: nothing read back, and the temporary is deleted.

    For a writer that was killed, and for one whose writing failed (a full disk, an encoder error): either
    way the file's state is unknown, and only what reads back and plays is kept. Its pictures were anonymized
    before they were encoded: a recording's writer never gets any other.

    Raises:
        OSError: The file could not be read, or its copy or name not written (permissions, I/O errors): it is
            left as it is (cut, for an MP4), never taken for one that does not play.
    """
    final = None
    if kind in FRAGMENTED_FORMATS and _cut_to_fragments(temporary) and _plays(temporary):
        final = place_free(temporary, name, spare)
    elif kind in CLUSTERED_FORMATS:
        final = _remux_readable(temporary, name, kind, spare)
    if final is None:
        temporary.unlink(missing_ok=True)
    return final


def place_free(temporary: Path, name: Path, spare: Path | None) -> Path:
    """Publish ``temporary`` under the first free name of ``name``'s (``name``, ``<stem>-1``, ...), never over a
    file, even one that another recovering process publishes at the same moment; the name it took."""
    while True:
        final = free_name(name, spare)
        with interrupts_deferred():  # published and its temporary gone, or neither: a Ctrl-C never splits them
            if place_new(temporary, final):
                return final


def _remux_readable(path: Path, name: Path, kind: str, spare: Path | None) -> Path | None:
    """Copy the packets of a killed writer's Matroska/WebM file that read back whole, and publish the copy
    under the first free name of ``name``'s once it is checked to play; the partial file is removed. The name
    it took (``None``: nothing read back).

    Matroska has no index to cut after: its clusters are written as they complete, and the copy stops at the
    first packet that does not read back (the cluster the writer was killed in).
    """
    copy = temporary_path(name, clean=False)  # the partial file is one of name's stale temporaries
    try:
        with av.open(str(path), metadata_errors="ignore") as source, \
                av.open(str(copy), mode="w", format=kind) as target:
            target.metadata.update(source.metadata)  # the segment's "starts ... s into the run"
            streams = {s.index: target.add_stream_from_template(s) for s in source.streams
                       if s.type in ("video", "audio")}
            copied = 0
            try:
                for packet in source.demux(*[s for s in source.streams if s.index in streams]):
                    if packet.is_corrupt:
                        break
                    if packet.size == 0:
                        continue  # a demuxer's end-of-stream marker (pictures before a B-frame have no dts)
                    packet.stream = streams[packet.stream.index]
                    target.mux(packet)
                    copied += 1
            except (av.FFmpegError, EOFError):
                pass  # the torn end: what came before is kept
        if copied and _plays(copy):
            with interrupts_deferred():  # the copy published and the original gone, or neither
                final = place_free(copy, name, spare)
                path.unlink(missing_ok=True)
            return final
    except (av.FFmpegError, ValueError) as exc:
        if isinstance(exc, OSError):
            copy.unlink(missing_ok=True)
            raise  # not read (EIO, permissions): not a file that does not play
    except BaseException:  # Ctrl-C, an I/O error: the killed writer's file is kept whole for the next recovery
        copy.unlink(missing_ok=True)
        raise
    copy.unlink(missing_ok=True)
    return None


def free_name(path: Path, spare: Path | None = None) -> Path:
    """The first of ``path``, ``<stem>-1``, ``<stem>-2``, ... that nothing has taken (a dangling link takes a
    name too) and that is not ``spare``."""
    n, candidate = 1, path
    while os.path.lexists(candidate) or candidate == spare:
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _cut_to_fragments(path: Path) -> bool:
    """Cut a fragmented MP4 after its last complete ``moof`` + ``mdat`` pair; whether one is there.

    The file must start with ``ftyp`` and ``moov``; a box that runs past the end of the file (the write the
    process was killed in) or that is not whole (a zero or short size) ends the readable part.
    """
    boxes, end, size = [], 0, path.stat().st_size
    with open(path, "rb") as file:
        while end + 8 <= size:
            file.seek(end)
            length, kind = struct.unpack(">I4s", file.read(8))
            if length == 1 and end + 16 <= size:  # 64-bit size
                (length,) = struct.unpack(">Q", file.read(8))
            if length < 8 or end + length > size:
                break
            boxes.append((kind, end + length))
            end += length
    kinds = [kind for kind, _ in boxes]
    if kinds[:2] != [b"ftyp", b"moov"]:
        return False
    complete = [i for i in range(2, len(boxes) - 1) if kinds[i] == b"moof" and kinds[i + 1] == b"mdat"]
    if not complete:
        return False
    cut = boxes[complete[-1] + 1][1]
    if cut < size:
        written = path.stat()
        os.truncate(path, cut)
        # Its time of last writing is what tells its writer's process apart from a later one with its id
        # (sinks.base.writer_alive): a cut that is not published must not make it look just written.
        os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns))
    return True


def _plays(path: Path) -> bool:
    """Whether every packet of the file reads back whole and its pictures decode (the first one at least)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                return False
            video, pictures = container.streams.video[0], 0
            for packet in container.demux():
                if packet.is_corrupt:
                    return False
                if packet.stream is video and not pictures:
                    pictures += len(packet.decode())  # the decoder's flush packet at the end included
            return pictures > 0
    except (av.FFmpegError, ValueError) as exc:
        if isinstance(exc, OSError):
            raise  # not read (EIO, permissions): not a file that does not play
        return False
