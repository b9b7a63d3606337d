"""What of a recording's file reads back whole, published once it is checked to play.

A recording is written so that a writer killed at any instant leaves a playable prefix (``video.recording_options``):
an MP4/MOV one in one-second fragments, a Matroska/WebM one a cluster a second. :func:`salvage_recording` cuts such
a file after its last complete fragment, or copies its packets up to the first torn one (cutting it in place after
its last complete cluster where the disk has no room for a copy), checks that the result plays and publishes it
under a free name, never over a file. It serves a killed writer's recovery
(``segments.recover_stale_segments``) and a writer whose own writing failed (``video.VideoFileSink``).
"""

from __future__ import annotations

import errno
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av

from camouflage_video.atomic import place_new
from camouflage_video.interrupts import interrupts_deferred
from camouflage_video.sinks.base import claim, temporary_path

#: Containers written in fragments (see ``video.FRAGMENTED``) and those written a cluster a second.
FRAGMENTED_FORMATS = ("mp4", "mov")
CLUSTERED_FORMATS = ("matroska", "webm")

#: Why a copy could not be written that a cut in place gets round: a full disk or quota, a file system's size
#: limit (FAT32's 4 GiB on a camera's card).
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)

#: The EBML ids of the elements a Matroska file is cut between.
_EBML_HEADER, _SEGMENT, _CLUSTER = 0x1A45DFA3, 0x18538067, 0x1F43B675


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
    first packet that does not read back (the cluster the writer was killed in). The copy gets the index and
    duration the killed writer never wrote, and takes the original's place before it is published. Where it
    cannot be written for want of room (the disk that made the writer fail is still full), the file is cut in
    place after its last complete cluster instead (:func:`_cut_to_clusters`): it plays the same, without an
    index.
    """
    copy = temporary_path(name, clean=False)  # the partial file is one of name's stale temporaries
    try:
        with av.open(str(path), metadata_errors="ignore") as source, \
                av.open(str(copy), mode="w", format=kind) as target:
            target.metadata.update(source.metadata)  # the segment's "starts ... s into the run"
            streams = {s.index: target.add_stream_from_template(s) for s in source.streams
                       if s.type in ("video", "audio")}
            copied = 0
            for packet in _readable_packets(source.demux(*[s for s in source.streams if s.index in streams])):
                packet.stream = streams[packet.stream.index]
                target.mux(packet)  # a write that fails (a full disk) is raised: a copy cut short is not kept
                copied += 1
        if copied and _plays(copy):
            return _replace_and_publish(copy, path, name, spare)
    except (av.FFmpegError, ValueError) as exc:
        copy.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _NO_ROOM and _cut_to_clusters(path) and _plays(path):
            return place_free(path, name, spare)
        if isinstance(exc, OSError):
            raise  # not read or not copied (EIO, permissions, no room): kept, never taken for one that does not play
    except BaseException:  # Ctrl-C, an I/O error: the killed writer's file is kept whole for the next recovery
        copy.unlink(missing_ok=True)
        raise
    copy.unlink(missing_ok=True)
    return None


def _replace_and_publish(copy: Path, path: Path, name: Path, spare: Path | None) -> Path:
    """Put the checked ``copy`` in the place of the killed writer's file, then publish it from there: whatever
    stops this (a kill at any instant), what is left is one file, recovered once (the original, the copy under
    the original's name, or the copy published and, were it stopped before its temporary name went, a hard
    link to it that recovery removes). Publishing the copy and then removing the original left both for a
    kill in between, and the next recovery published the recording twice."""
    written = path.stat()
    # The time of its last writing tells its writer's process from a later one with its id (writer_alive).
    os.utime(copy, ns=(written.st_atime_ns, written.st_mtime_ns))
    held = claim(copy)  # under the original's name it is not taken by another recovery while it is published
    try:
        with interrupts_deferred():
            os.replace(copy, path)
        return place_free(path, name, spare)
    finally:
        if held is not None:
            os.close(held)


def _readable_packets(packets: Iterator[av.Packet]) -> Iterator[av.Packet]:
    """The demuxed packets up to the first one that does not read back whole (the torn end of the file)."""
    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.FFmpegError, EOFError):
            return  # the end, or the torn end: what came before is kept
        if packet.is_corrupt:
            return
        if packet.size:  # not a demuxer's end-of-stream marker (pictures before a B-frame have no dts)
            yield packet


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


def _cut_to_clusters(path: Path) -> bool:
    """Cut a Matroska/WebM file after its last complete top-level element, and give its segment that size;
    whether a complete cluster is there.

    A recording's writer buffers each cluster and writes it out whole (``video.CLUSTERED``); the segment's size
    stays unknown (all ones) until the file is finalized. An element that runs past the end of the file (the
    write the process was killed in, or the one a full disk refused), or whose size is unknown or not
    readable, ends the readable part. The cut needs no room on the disk.
    """
    size = path.stat().st_size
    with open(path, "r+b") as file:
        header = _ebml_element(file, 0, size)
        if header is None or header[0] != _EBML_HEADER or header[2] is None:
            return False
        start = header[1] + header[2]
        segment = _ebml_element(file, start, size)
        if segment is None or segment[0] != _SEGMENT:
            return False
        body = end = start + segment[1]
        limit = size if segment[2] is None else min(size, body + segment[2])
        clusters = 0
        while (element := _ebml_element(file, end, limit)) is not None and element[2] is not None \
                and end + element[1] + element[2] <= limit:
            end += element[1] + element[2]
            clusters += element[0] == _CLUSTER
        if not clusters:
            return False
        written = path.stat()
        width = segment[3]
        if segment[2] != end - body and end - body < (1 << (7 * width)) - 1:
            file.seek(start + segment[1] - width)  # the size field: a marker bit, then the size
            file.write(((1 << (7 * width)) | (end - body)).to_bytes(width, "big"))
        file.truncate(end)
    # Its time of last writing is what tells its writer's process apart from a later one with its id
    # (sinks.base.writer_alive): a cut that is not published must not make it look just written.
    os.utime(path, ns=(written.st_atime_ns, written.st_mtime_ns))
    return True


def _ebml_element(file: BinaryIO, at: int, end: int) -> tuple[int, int, int | None, int] | None:
    """The id, header length, size (``None``: unknown) and size-field width of the EBML element at ``at``;
    ``None`` where its header runs past ``end`` or is not valid."""
    if at >= end:
        return None
    file.seek(at)
    data = file.read(min(12, end - at))
    ident, ident_width = _vint(data, 0)
    if ident is None or ident_width > 4:
        return None
    value, width = _vint(data, ident_width)
    if value is None:
        return None
    size = value & ((1 << (7 * width)) - 1)
    return ident, ident_width + width, None if size == (1 << (7 * width)) - 1 else size, width


def _vint(data: bytes, at: int) -> tuple[int | None, int]:
    """An EBML variable-length integer at ``at`` with its marker bit kept, and its width (``None``: not one)."""
    if at >= len(data) or not data[at]:
        return None, 0
    width = 9 - data[at].bit_length()
    if at + width > len(data):
        return None, width
    return int.from_bytes(data[at:at + width], "big"), width


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
