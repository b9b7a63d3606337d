"""What a file holds, decided by its content: a still image, a video, or neither.

A name proves nothing: a JPEG saved as ``.jfif`` or ``.dat``, an MP4 named ``.3g2``, a HEIC photo all hold
faces. :func:`classify` reads the first bytes of a file and checks them against the signatures of image and
video formats; a container that may hold video or only audio (MP4, Matroska, Ogg, MP3 with cover art, ...) is
opened with FFmpeg to see its streams; a binary file with no known signature is offered to FFmpeg's own probe.
Only what none of this recognises, or what holds no picture stream at all (text, audio, archives, data), is
``other``. A name that says image or video makes a file media even when its content is not recognised: it
then fails where it is read, and is reported, rather than being treated as something harmless.

Reading 4 KiB per file and, for containers and unknown binaries, one FFmpeg probe keeps this cheap on large
trees; text (labels, READMEs) never reaches FFmpeg, whose ``tty`` demuxer would render a ``.txt`` file as video.
"""

from __future__ import annotations

import codecs
import mmap
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import av
import numpy as np

KINDS = ("video", "image", "other")

#: Names that say "video" (anything FFmpeg demuxes; animated GIFs and raw elementary streams included).
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .mov .webm .avi .gif .mpg .mpeg .m1v .m2v .mpe .vob .ts .mts .m2ts .flv .f4v .wmv .asf "
    ".3gp .3g2 .ogv .ogm .mxf .y4m .nut .ivf .dv .rm .rmvb .divx .mj2 .h264 .264 .h265 .265 .hevc .obu".split()
)
#: Names that say "image", beyond the ones this tool writes (``IMAGE_EXTENSIONS``).
IMAGE_NAME_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .apng .bmp .dib .webp .tif .tiff .heic .heif .hif .avif .jxl .jp2 .j2k .jpf "
    ".jpx .ppm .pgm .pbm .pnm .pam .pfm .hdr .exr .tga .pcx .ico .cur .icns .dds .qoi .sgi .ras .sr .xpm .xbm "
    ".psd .dng .cr2 .cr3 .nef .arw .orf .rw2 .raf".split()
)

HEAD_BYTES = 4096

# FFmpeg renders text as pictures through these decoders (a README.txt opens as an "ansi" video).
_TEXT_ART_CODECS = frozenset({"ansi", "bintext", "xbin", "idf", "tty"})
# ISO base media brands of still images (HEIF, HEIC, AVIF and their sequences, JPEG XL, Canon CR3).
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"mif2",
                           b"avif", b"avis", b"jxl ", b"crx "})
# Netpbm: "P1".."P6", whitespace or comments, width and height; "P7" (PAM) and its header lines.
_PNM = re.compile(rb"P[1-6](?:\s+|\s*#[^\n]*\n)+\d+\s+\d+|P7\s*\n(?:WIDTH|HEIGHT|DEPTH|MAXVAL|TUPLTYPE|#)")
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot", b"junk", b"uuid"})


@dataclass(frozen=True)
class Sniffed:
    """What :func:`classify` found.

    Attributes:
        kind: ``video``, ``image`` or ``other``.
        format: Short name of what the content is (``jpeg``, ``mp4``, ``text``, ``audio``, ``unknown``, ...).
        reason: Why, in a few words, for the manifest and for messages.

    Examples:
        >>> Sniffed("image", "jpeg", "JPEG data").kind
        'image'
    """

    kind: str
    format: str
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Sniffed.kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def media(self) -> bool:
        return self.kind != "other"


def kind_by_name(name: str) -> str:
    """``video``, ``image`` or ``other`` from the extension alone (a hint: see :func:`classify`)."""
    ext = PurePosixPath(name).suffix.lower()
    if ext == ".gif":
        return "video"  # animated GIFs are read as videos
    if ext in IMAGE_NAME_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "other"


def classify(path: str | os.PathLike[str]) -> Sniffed:
    """Video, image or other, by content first; a media extension makes unrecognised content media too.

    Never raises for a bad file: an unreadable one is ``other`` unless its name says media (it cannot be
    copied either way, and whoever reads it reports why).

    Examples:
        >>> classify("holiday.jfif")  # doctest: +SKIP
        Sniffed(kind='image', format='jpeg', reason='JPEG data')
    """
    path = Path(path)
    found = sniff(path)
    if found.media:
        return found
    by_name = kind_by_name(path.name)
    if by_name != "other":
        return Sniffed(by_name, found.format, f"named {path.suffix.lower()}, but {found.reason}")
    return found


def sniff(path: str | os.PathLike[str]) -> Sniffed:
    """What the content of ``path`` is, ignoring its name (except where FFmpeg's probe uses it)."""
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            return Sniffed("other", "special", "not a regular file")
        if info.st_size == 0:
            return Sniffed("other", "empty", "an empty file")
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        return Sniffed("other", "unreadable", f"cannot be read ({exc.strerror or exc})")
    image = _image_signature(head)
    if image is not None:
        # Animations are videos: their output is a video (a dataset names it .mp4), every frame anonymized.
        kind = "video" if image == "gif" or animated_image(head, image) else "image"
        return Sniffed(kind, image, f"{'an animated ' if kind == 'video' and image != 'gif' else ''}"
                                    f"{image.upper()} data")
    container = _container_signature(head)
    if container is not None:
        if kind_by_name(path.name) == "video":
            # Name and content agree: skip the probe, which only tells audio from video (the reader says
            # "no video stream" for an audio-only clip.mp4). Most files of a video dataset end here.
            return Sniffed("video", container, f"{container} data")
        return _probe(path, container)
    known = _data_signature(head)
    if known is not None:
        return Sniffed("other", known, f"{known} data, not a picture format (not looked into)")
    if _is_text(head):
        text_image = _text_image_signature(head)
        if text_image is not None:
            return Sniffed("image", text_image, f"{text_image.upper()} image data")
        document = _text_document_signature(head)
        if document is not None:
            return Sniffed("other", document, f"a {document} document, which can carry pictures (not looked into)")
        return Sniffed("other", "text", "text")
    return _probe(path, None)


def animated_image(head: bytes, image: str) -> bool:
    """Whether a PNG, WebP or AVIF whose first bytes are ``head`` says it is an animation (of two frames or
    more, for a PNG): its ``acTL`` chunk, its ``VP8X`` animation flag, an image-sequence brand."""
    if image == "png":
        found, data = head.find(b"acTL"), head.find(b"IDAT")
        return 0 < found and (data < 0 or found < data) and int.from_bytes(head[found + 4:found + 8], "big") > 1
    if image == "webp":
        return head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x02)
    return image == "avif" and head[8:12] == b"avis"


def _image_signature(head: bytes) -> str | None:
    """The still-image format whose signature ``head`` starts with (GIF counts: it is read as a video)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"IIRO", b"IIRS", b"IIU\x00"):
        return "tiff"  # TIFF and the camera raw formats built on it (DNG, CR2, NEF, ARW, ORF, RW2)
    if head.startswith(b"FUJIFILMCCD-RAW"):
        return "raf"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0" and head[14:15] in (b"\x0c", b"\x28", b"\x34", b"\x38",
                                                                     b"\x40", b"\x6c", b"\x7c"):
        return "bmp"
    if _PNM.match(head) or head[:3] in (b"PF\n", b"Pf\n"):
        return "pnm"
    if head[4:8] == b"ftyp":
        brands = {head[i:i + 4] for i in range(8, min(len(head), 64), 4)}
        if brands & _IMAGE_BRANDS:
            return "avif" if {b"avif", b"avis"} & brands else "heif"
    if head.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        return "jpeg2000"
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "jpegxl"
    if head[:4] in (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00") and len(head) > 6 and head[4] > 0 and head[5] == 0:
        return "ico"
    signatures = {
        b"8BPS": "psd", b"v/1\x01": "exr", b"qoif": "qoi", b"icns": "icns", b"DDS ": "dds",
        b"\x59\xa6\x6a\x95": "sunraster", b"farbfeld": "farbfeld",
    }
    for magic, name in signatures.items():
        if head.startswith(magic):
            return name
    if head.startswith((b"#?RADIANCE", b"#?RGBE")):
        return "hdr"
    if head[:2] == b"\x01\xda" and head[2] in (0, 1):
        return "sgi"
    return None


def _container_signature(head: bytes) -> str | None:
    """The audio/video container ``head`` starts like; FFmpeg then says whether it holds pictures."""
    if head[4:8] == b"ftyp":
        return "mp4"
    if head[4:8] in _QUICKTIME_ATOMS:
        return "mov"
    if head[:4] == b"RIFF":
        return {b"AVI ": "avi", b"WAVE": "wav", b"CDXA": "mpeg", b"AMV ": "amv"}.get(head[8:12], "riff")
    signatures = {
        b"\x1a\x45\xdf\xa3": "matroska", b"OggS": "ogg", b"FLV\x01": "flv",
        b"\x30\x26\xb2\x75\x8e\x66\xcf\x11": "asf", b"\x00\x00\x01\xba": "mpeg", b"\x00\x00\x01\xb3": "mpegvideo",
        b".RMF": "rm", b"\x06\x0e\x2b\x34": "mxf", b"YUV4MPEG2": "y4m", b"DKIF": "ivf",
        # Audio formats whose tags can carry a picture (cover art): FFmpeg shows it as a video stream.
        b"ID3": "mp3", b"fLaC": "flac", b"FORM": "iff", b"wvpk": "wavpack", b"MAC ": "ape",
        b"FWS": "swf", b"CWS": "swf", b"ZWS": "swf", b"BIK": "bink", b"SMK": "smacker",
    }
    for magic, name in signatures.items():
        if head.startswith(magic):
            return name
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    if len(head) >= 389 and head[4] == head[196] == head[388] == 0x47:
        return "m2ts"
    return None


def _data_signature(head: bytes) -> str | None:
    """Archives, documents and array formats: provably not a picture themselves, so FFmpeg need not probe them.

    What they contain is not looked into (a zip of photos holds faces); the docs say so.
    """
    signatures = {
        b"PK\x03\x04": "zip", b"PK\x05\x06": "zip", b"\x1f\x8b": "gzip", b"BZh": "bzip2",
        b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"7z\xbc\xaf\x27\x1c": "7z", b"Rar!\x1a\x07": "rar",
        b"%PDF-": "pdf", b"\x89HDF\r\n\x1a\n": "hdf5", b"PAR1": "parquet", b"\x93NUMPY": "npy",
        b"SQLite format 3\x00": "sqlite", b"\x7fELF": "elf", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1": "ole",
    }
    for magic, name in signatures.items():
        if head.startswith(magic):
            return name
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def _is_text(head: bytes) -> bool:
    """True for UTF-8 or UTF-16 text (a cut multi-byte character at the end of ``head`` is allowed)."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    control = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\v\x1b\b")
    return control <= len(text) // 100


def _text_image_signature(head: bytes) -> str | None:
    """Raster formats written as text: XPM and XBM (pixels spelled out as C source)."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith(b"/* XPM */"):
        return "xpm"
    if start.startswith(b"#define ") and b"_width" in head[:200]:
        return "xbm"
    return None


# Text formats that are documents, drawings or scans: they carry pictures in ways no text rule follows
# (PostScript's hex images, RTF's \pict, SVG's shapes, FITS pixels, a face scan as a mesh).
_TEXT_DOCUMENTS = (
    (re.compile(rb"%!"), "PostScript"),
    (re.compile(rb"\{\\rtf", re.I), "RTF"),
    (re.compile(rb"(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*|<!DOCTYPE[^>]*>\s*)*<svg\b", re.I | re.S), "SVG"),
    (re.compile(rb"SIMPLE  =\s+T"), "FITS"),
    (re.compile(rb"ply\r?\nformat "), "PLY mesh"),
    (re.compile(rb"[CN]?OFF\s"), "OFF mesh"),
    (re.compile(rb"MIME-Version:", re.I), "MIME message"),
)


def _text_document_signature(head: bytes) -> str | None:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for pattern, name in _TEXT_DOCUMENTS:
        if pattern.match(start):
            return name
    if b"<svg" in head.lower():
        return "SVG"
    if len(re.findall(rb"(?m)^v[ \t]+-?[\d.]+[ \t]+-?[\d.]+[ \t]+-?[\d.]+", head)) >= 8:
        return "Wavefront OBJ mesh"
    return None


def unaccounted_audio(path: str | os.PathLike[str]) -> str | None:
    """Why an audio file (one FFmpeg finds no picture in) may carry more than sound, else ``None``.

    Only a file whose container accounts for every byte is clean: a WAV or AIFF whose chunks add up to the
    size its header declares, an Ogg file that is pages from start to end, an MP3 that is frames between its
    tags. Bytes after the end (a JPEG appended to a song), a chunk or tag holding a picture's signature, or
    a format whose end this cannot check (FLAC, M4A, WMA, ...) make it not clean. The samples themselves
    are not judged: audio can carry any bytes (the docs say so).
    """
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _audio_unaccounted(data)  # type: ignore[arg-type]  # an mmap reads like bytes


def _audio_unaccounted(data: bytes) -> str | None:
    if data[:4] in (b"RIFF", b"FORM"):
        return _chunks_unaccounted(data)
    if data[:4] == b"OggS":
        return _ogg_unaccounted(data)
    if data[:3] == b"ID3" or _mpeg_frame_size(data, 0):
        return _mp3_unaccounted(data)
    return "audio in a container whose end this tool cannot check"


# A picture's signature and what must follow it, so that sound does not spell one by chance (a quiet PCM
# track is full of ff d8 ff cX: small negative samples): a JPEG's first three segments, each of a known
# kind and ending where the next marker starts; a PNG's IHDR; a GIF's version and a sane size; a WebP's
# RIFF header; a TIFF's first directory; a BMP's header; a binary PNM's header.
_CARRIED = re.compile(
    rb"\xff\xd8\xff[\xc0-\xfe]|\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR|GIF8[79]a|RIFF....WEBPVP8|II\*\x00|MM\x00\*"
    rb"|BM.{4}\x00\x00\x00\x00|P[56]\s+[1-9]\d{0,4}\s+[1-9]\d{0,4}\s+(?:255|65535)\s", re.S)
_COVER_COMMENT = re.compile(rb"(?i)METADATA_BLOCK_PICTURE=|COVERART=")
_JPEG_SEGMENTS = frozenset([*range(0xC0, 0xC8), *range(0xC9, 0xD0), 0xDB, 0xDD, *range(0xE0, 0xF0), 0xFE])


def carried_picture(data: bytes) -> str | None:
    """The picture that ``data`` (an audio packet, a codec's setup data) carries, in a few words, or ``None``.

    An audio track copied into an output carries its bytes as they are: a cover picture in a Vorbis or
    FLAC header, or a picture written as samples, would reach the output whole.
    """
    if _COVER_COMMENT.search(data):
        return "a cover picture in its comments"
    for match in _CARRIED.finditer(data):
        if _structured(data, match.start()):
            return f"a {(_image_signature(data[match.start():match.start() + 64]) or 'picture').upper()}"
    return None


def _structured(data: bytes, pos: int) -> bool:
    """Whether the signature at ``pos`` goes on as a picture does (see ``_CARRIED``)."""
    head = data[pos:pos + 64]
    if head[:2] == b"\xff\xd8":
        at = pos + 2
        for _ in range(3):
            if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] not in _JPEG_SEGMENTS:
                return False
            at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
        return at < len(data) and data[at] == 0xFF
    if head[:3] == b"GIF":
        width, height = int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
        return 0 < width <= 8192 and 0 < height <= 8192
    if head[:2] in (b"II", b"MM"):
        order = "little" if head[:2] == b"II" else "big"
        first = int.from_bytes(head[4:8], order)
        if not 8 <= first <= len(data) - pos - 14:
            return False
        entries = int.from_bytes(data[pos + first:pos + first + 2], order)
        tag = int.from_bytes(data[pos + first + 2:pos + first + 4], order)
        return 3 <= entries <= 64 and 0xFE <= tag <= 0x117  # NewSubfileType ... the first tags, sorted
    if head[:2] == b"BM":
        offset, header = int.from_bytes(head[10:14], "little"), int.from_bytes(head[14:18], "little")
        return 26 <= offset <= 2048 and header in (12, 40, 52, 56, 64, 108, 124)
    return True  # PNG (IHDR), WebP (VP8), PNM: their signatures are long enough as they are


def pictures_beside_the_video(path: str | os.PathLike[str]) -> list[str]:
    """What a video file carries besides its video that may be a picture: cover art, attachments, and pictures
    in the setup data or packets of its other streams (``carried_picture``), one line each; ``[]`` for none.

    An output's faces are judged in its video; these are what a player never shows and a file still holds.
    """
    found = []
    with av.open(os.fspath(path), mode="r", metadata_errors="ignore") as container:
        others = []
        for stream in container.streams:
            where = f"stream #{stream.index} ({stream.type})"
            if stream.type == "video" and stream.disposition & av.stream.Disposition.attached_pic:
                found.append(f"{where}: a cover picture")
            elif stream.type == "attachment":
                found.append(f"{where}: an attached file")
            elif stream.type != "video":
                extra = carried_picture(bytes(stream.codec_context.extradata or b"")) if stream.codec_context else None
                if extra is not None:
                    found.append(f"{where}: {extra} in its codec setup data")
                others.append(stream)
        if others:
            for packet in container.demux(others):
                if packet.dts is not None and (picture := carried_picture(bytes(packet))) is not None:
                    at = f" at {float(packet.pts * packet.time_base):.2f} s" if packet.pts is not None else ""
                    found.append(f"stream #{packet.stream.index} ({packet.stream.type}): {picture}{at}")
                    if len(found) >= 20:
                        break
    return found


_PICTURE_MAGIC = re.compile(
    rb"\xff\xd8\xff|\x89PNG|GIF8[79]a|RIFF....WEBP|ftyp|II\*\x00|MM\x00\*|BM....\x00\x00\x00\x00", re.S
)
_METADATA_LIMIT = 1 << 20


def _chunks_unaccounted(data: bytes) -> str | None:
    little = data[:4] == b"RIFF"
    order = "little" if little else "big"
    end = 8 + int.from_bytes(data[4:8], order)
    if end != len(data):
        return f"its header declares {end} bytes, the file has {len(data)}"
    sound = (b"data",) if little else (b"SSND",)
    pos, metadata = 12, 0
    while pos < end:
        name, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], order)
        body = data[pos + 8:pos + 8 + size]
        if pos + 8 + size > end:
            return f"chunk {name!r} runs past the end of the file"
        if name.lower().strip() in (b"id3", b"ida3"):
            return "an ID3 chunk, which can hold pictures"
        if name in sound:
            if _image_signature(body[:64]) or _container_signature(body[:64]):
                return "its sound data starts like a picture"
        else:
            metadata += size
            if _PICTURE_MAGIC.search(body):
                return f"chunk {name!r} holds a picture's signature"
        pos += 8 + size + (size & 1)
    if pos != end:
        return "its chunks do not end where the header says"
    if metadata > _METADATA_LIMIT:
        return "more metadata than any tag needs"
    return None


def _ogg_unaccounted(data: bytes) -> str | None:
    if re.search(rb"(?i)METADATA_BLOCK_PICTURE|COVERART", data[:_METADATA_LIMIT]):
        return "a cover picture in its comments"
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"OggS" or pos + 27 > len(data):
            return f"bytes that are not Ogg pages at offset {pos}"
        segments = data[pos + 26]
        pos += 27 + segments + sum(data[pos + 27:pos + 27 + segments])
    return None if pos == len(data) else "its last page runs past the end of the file"


_BITRATES = {  # (MPEG-1?, layer) -> kbit/s by index
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES[(False, 3)] = _BITRATES[(False, 2)]


def _mpeg_frame_size(data: bytes, pos: int) -> int:
    """The size of the MPEG audio frame at ``pos``, or 0 where none starts."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return 0
    version, layer = (data[pos + 1] >> 3) & 3, 4 - ((data[pos + 1] >> 1) & 3)
    bitrate, rate_index, padding = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3, (data[pos + 2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate in (0, 15) or rate_index == 3:
        return 0
    rate = (44100, 48000, 32000)[rate_index] >> {3: 0, 2: 1, 0: 2}[version]
    kbps = _BITRATES[(version == 3, layer)][bitrate] * 1000
    if layer == 1:
        return (12 * kbps // rate + padding) * 4
    return (144 if version == 3 or layer == 2 else 72) * kbps // rate + padding


def _mp3_unaccounted(data: bytes) -> str | None:
    pos = 0
    while data[pos:pos + 3] == b"ID3" and pos + 10 <= len(data):
        size = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(data[pos + 6:pos + 10]))
        size += 10 if data[pos + 5] & 0x10 else 0
        if _PICTURE_MAGIC.search(data[pos:pos + size]) or size > _METADATA_LIMIT:
            return "an ID3 tag that holds a picture's signature or more than any tag needs"
        pos += size
    while pos < len(data) and (size := _mpeg_frame_size(data, pos)):
        pos += size
    tail = data[pos:]
    if tail[-128:-125] == b"TAG":
        tail = tail[:-128]
    if tail[-32:-24] == b"APETAGEX":
        ape = int.from_bytes(tail[-20:-16], "little") + 32
        if _PICTURE_MAGIC.search(tail[-ape:]) or ape > _METADATA_LIMIT:
            return "an APE tag that holds a picture's signature or more than any tag needs"
        tail = tail[:-ape]
    if tail:
        return f"{len(tail)} bytes after its last frame"
    return None


def embedded_picture(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str | None:
    """The first sign that a text file carries binary data inline (a picture, perhaps), else ``None``.

    Label files can hold whole photos: LabelMe's JSON keeps the image in ``imageData``, HTML and notebooks
    embed ``data:image/...;base64,`` URIs, SQL dumps store blobs as hex, e-mails attach photos. Such a file is
    not an image by its content type, yet copying it copies faces. Any encoding of binary data counts, not
    only a picture's: raw pixels encoded in hex carry no signature, and face datasets keep pixel values as
    decimal numbers (FER2013). What is refused is described in docs/dataset.md; what no rule can catch (a
    made-up encoding) is why only files the caller means to copy are checked, and the docs say so. The whole
    file is read in chunks, each with the end of the one before, so a run split by a chunk boundary is seen
    whole.
    """
    overlap = 8192
    tail = b""
    with open(path, "rb") as f:
        decoder = _wide_text_decoder(f.read(4))
        f.seek(0)
        while block := f.read(chunk):
            if decoder is not None:  # UTF-16/32 text (Notepad's "Unicode", PowerShell 5's "> file"): read as UTF-8
                block = decoder.decode(block).encode("utf-8", "replace")
            window = tail + block
            found = _encoded_data(window)
            if found is not None:
                return found
            tail = window[-overlap:]
    return None


def _wide_text_decoder(head: bytes) -> codecs.IncrementalDecoder | None:
    """A decoder for text whose byte-order mark says UTF-16 or UTF-32, whose every other byte is zero: the rules
    below read UTF-8 (or ASCII) text, and a run of base64 with a zero after each character is none."""
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return codecs.getincrementaldecoder("utf-32")("replace")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return codecs.getincrementaldecoder("utf-16")("replace")
    return None


# Base64 of the first bytes of pictures, as it starts a base64 string (so not inside another one).
_BASE64_STARTS = {
    b"/9j/": "JPEG", b"iVBORw0KGgo": "PNG", b"R0lGODdh": "GIF", b"R0lGODlh": "GIF", b"UklGR": "RIFF (WebP/AVI)",
    b"SUkqA": "TIFF", b"TU0AK": "TIFF", b"AAAAGGZ0eXA": "MP4", b"AAAAHGZ0eXA": "MP4", b"AAAAIGZ0eXA": "MP4",
}
# ... followed by enough base64 to be a picture rather than a coincidence; or a data: URI of a picture.
_EMBEDDED = re.compile(
    rb"(?P<uri>(?i:data:(?:image|video)/[\w.+-]+))"
    rb"|(?<![A-Za-z0-9+/])(?P<base64>" + b"|".join(re.escape(k) for k in _BASE64_STARTS) + rb")[A-Za-z0-9+/]{64}"
)
# Signs that are enough on their own: a header that starts an encoded file or a mail attachment, a picture's
# first bytes as a list of byte values, terminal graphics (sixel, ReGIS, kitty, iTerm2 inline images).
# Each with a cheap test of the window first: one pattern of all six, tried at every byte, took a sixth of the
# time a large annotation file spends here.
_MARKERS = (
    ("uuencoded data", lambda w: b"begin" in w, re.compile(rb"(?m:^begin(?:-base64)? [0-7]{3,4} \S)")),
    ("yEnc-encoded data", lambda w: b"=ybegin" in w, re.compile(rb"(?m:^=ybegin )")),
    ("a mail attachment", lambda w: _CONTENT.search(w) is not None, re.compile(
        rb"(?im:^content-(?:type:[ \t]*(?:image|video|application|audio)/|disposition:[ \t]*attachment))")),
    ("a picture as a list of byte values", lambda w: b"216" in w or b"80" in w, re.compile(
        rb"\b(?:255[\s,;]+216[\s,;]+255[\s,;]+(?:19[2-9]|2[0-5][0-9])|137[\s,;]+80[\s,;]+78[\s,;]+71)[\s,;]")),
    ("terminal graphics", lambda w: b"\x1b" in w, re.compile(rb"\x1bP|\x1b_G|\x1b\]1337;File=")),
    ("uuencoded data", lambda w: b"\nM" in w or w[:1] == b"M", re.compile(rb"(?m:(?:^M[ -`]{60}\r?\n){2})")),
)
_CONTENT = re.compile(rb"content-", re.I)
# Hex: one run longer than a SHA-512 digest; 64 escaped bytes (0xff, \xff, %ff, =FF, \377) in a row.
_HEX_RUN = re.compile(rb"[0-9A-Fa-f]{129,}")
# Each kind of escape with the character it needs 64 of (``None``: unescaped octal, always tried).
_ESCAPED_BYTES = (
    (b"x", re.compile(rb"(?:(?:0[xX]|\\\\?x)[0-9A-Fa-f]{2}[\s,]*){64,}")),
    (b"%", re.compile(rb"(?:%[0-9A-Fa-f]{2}){64,}")),
    (b"=", re.compile(rb"(?:=[0-9A-F]{2}(?:=\r?\n)?){64,}")),
    (b"\\", re.compile(rb"(?:\\\\?[0-7]{3}){64,}|(?:\\\\?u00[0-9A-Fa-f]{2}){64,}")),
    (None, re.compile(rb"(?<![0-9])(?:[0-3][0-7]{2}[ \t,]+){64,}")),
)
_ESCAPE = re.compile(rb"0[xX]|\\\\?x|\\\\?u00|[%=\\]|[\s,]")
# A hex dump line: xxd -p, od, xxd or hexdump -C (an offset, then groups, then an ASCII column only after an
# offset, so "<sha256>  name" is not one). Consecutive dump lines count as one run.
_DUMP_LINE = re.compile(
    rb"[ \t]*:?(?:(?P<offset>[0-9A-Fa-f]{4,}:?)[ \t]+)?"
    rb"(?P<hex>(?:[0-9A-Fa-f]{2})+(?:[ \t]{1,3}(?:[0-9A-Fa-f]{2})+)*)(?(offset)(?:[ \t]+.*)?|[ \t]*)\r?"
)
# Runs of a base64 (or base64url, xxencode) alphabet and of the ascii85 one, across line breaks. Their
# characters are spread over the whole alphabet: any 64 of them hold >= 34 (base64) or >= 38 (ascii85)
# different ones, as words, paths, numbers and label lists never do.
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{64,}")
_ASCII85_RUN = re.compile(rb"[!-uz]{64,}")
_BASE32_RUN = re.compile(rb"[A-Z2-7]{64,}|[a-z2-7]{64,}")
# The same data cut into pieces (a JSON array of lines, a YAML block, XML lines, hex pairs or words with any
# separators, groups of four): pieces of one alphabet with anything else between them are joined, and what is
# refused is a picture's first bytes at the start of a piece followed by enough data. Joining does not judge
# by the spread of characters, as a run does: lists of random ids (nanoids, drive ids) and MAC addresses
# are pieces too, and are plain text.
_HEX_PIECE = re.compile(rb"(?<![0-9A-Za-z])(?:0[xX])?([0-9A-Fa-f]{2,})(?![0-9A-Za-z])")
_BASE64_PIECE = re.compile(rb"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]+=*")
_PIECE_GAP = 64  # characters of anything else between two pieces of one chain
#: A picture's first bytes in hex, as they are and as little-endian 32-bit words (a C uint32_t array): what
#: makes a window worth joining its pieces for.
_HEX_MAGIC = (b"ffd8ff", b"89504e47", b"47494638", b"52494646", b"49492a00", b"4d4d002a", b"474e5089", b"38464947",
              b"46464952")
_NOT_HEX = bytes(sorted(set(range(256)) - set(b"0123456789ABCDEFabcdef")))
# Decimal numbers are hex pieces too, and in a large COCO file some run of them spells "8BPS" or "GIF89a" in
# hex by chance (their hex has no letter). 128 hex digits of a real picture without one of a-f: (10/16)^128.
_HEX_LETTERS = re.compile(rb"[a-fA-F]")
_BITS = re.compile(rb"(?:[01]{8}[\s,;.]{0,2}){64,}")
_INTEGRITY = re.compile(rb"sha(?:1|256|384|512)-[A-Za-z0-9+/]{27,86}={0,2}")
_QUOTES = re.compile(rb'"\s*[:,\]}]|[\[{,:]\s*"')
# Pictures drawn with characters: braille and block elements (chafa, timg), and colour escapes.
_CHARACTER_ART = re.compile(rb"\xe2(?:[\xa0-\xa3][\x80-\xbf]|\x96[\x80-\x9f])")
_COLOUR = re.compile(rb"\x1b\[[0-9;]*m")


def _encoded_data(window: bytes) -> str | None:
    """What in ``window`` may carry binary data, in a few words, or ``None``."""
    match = _EMBEDDED.search(window)
    if match is not None:
        if match.group("uri"):
            return match.group("uri").decode("ascii", "replace")
        return f"base64 {_BASE64_STARTS[match.group('base64')]}"
    # Cheap literal tests first: the patterns are slow to try at every byte of a large annotation file.
    for name, worth_trying, pattern in _MARKERS:
        if worth_trying(window) and pattern.search(window) is not None:
            return name
    for match in _HEX_RUN.finditer(window):
        if not _zeros_and_ones(match.group()):  # a mask's row (0 and 1 are hex digits too): see _BITS
            return f"{_hex_kind(match.group())} as hex"
    for needed, pattern in _ESCAPED_BYTES:
        if needed is not None and window.count(needed) + (needed == b"x") * window.count(b"X") < 64:
            continue
        for match in pattern.finditer(window):
            data = _unescape(match.group())
            if data is not None and not _is_text(data):
                return f"{_magic_name(data)} as escaped bytes"
    found = _hex_dump(window)
    if found is not None:
        return found
    # Subresource-integrity digests (package-lock.json, <script integrity=...>) are base64 of a hash, no data.
    joined = _INTEGRITY.sub(b" ", window.replace(b"\r", b"").replace(b"\n", b""))
    # JSON's and CSV's quotes between values end an ascii85 run (ascii85 data rarely has one beside a comma).
    unquoted = _QUOTES.sub(b" ", joined)
    for pattern, least, name, text in ((_BASE64_RUN, 34, "base64", joined), (_ASCII85_RUN, 38, "ascii85", unquoted),
                                       (_BASE32_RUN, 20, "base32", joined)):
        for match in pattern.finditer(text):
            run = match.group()
            if len(set(run)) >= least and _spread(run, least, name == "ascii85"):
                return f"{_decoded_kind(run, name)} as {name}"
    found = _pieces(window) or _base85(joined)
    if found is not None:
        return found
    if len(_CHARACTER_ART.findall(window)) >= 256 or len(_COLOUR.findall(window)) >= 256:
        return "a picture drawn with characters"
    return _numbers(window)


# Numbers and nothing else between them (no letters, no quotes): where a face dataset keeps its pictures as
# pixel values (FER2013's CSV: 48x48 grey values per row; a numpy array saved with savetxt or tolist() to
# JSON). A run starts where no such character comes before it, so each is scanned once.
_NUMBER_CHARACTERS = rb"0-9.eE+\-\s,;\[\]()\"'"
_NUMBER_RUN = re.compile(rb"(?<![" + _NUMBER_CHARACTERS + rb"])[" + _NUMBER_CHARACTERS + rb"]{1152,}")
_TO_SPACES = bytes.maketrans(b",;[]()\"'", b"        ")  # quoted numbers too: a CSV's "12","34"
#: 24x24 grey values (or 14x14 RGB ones): a face at the smallest size it is still told apart from others.
_LEAST_PIXELS = 576


def _numbers(window: bytes) -> str | None:
    """A picture (or binary data) written as numbers, in a few words, or ``None``.

    Within a run of numbers, every stretch of at least ``_LEAST_PIXELS`` values of one kind is judged: 8-bit
    (integers 0..255), normalised (within -1..1) or signed bytes (-128..127, a Java ``byte[]``), so that an id
    column or the floats of a keypoint table beside the pixels (Kaggle's facial keypoints CSV) do not hide
    them. A stretch is a picture when it holds at least 16 different values laid out in rows: its values
    change little from one to the next (or to the third or fourth next, RGB or RGBA), compared with two of
    the same channel taken at random, and much less from one row to the next than half a row along
    (``_has_rows``), which a series of measurements, a polygon's x and y or a list of points do not. A
    stretch of 160 different byte values that does not change less from one to the next, nor at any other
    small step, than at random is bytes (a JPEG's body, its header cut off); one that starts with a
    picture's header is that picture. Octal bytes are read as octal.
    """
    for match in _NUMBER_RUN.finditer(window):
        tokens = match.group().translate(_TO_SPACES).split()
        if len(tokens) < _LEAST_PIXELS:
            continue
        values = _as_numbers(tokens)
        if values is None or len(values) < _LEAST_PIXELS:
            continue
        integral = values == np.round(values)
        if values.max() <= 377 and values.max() > 255 and integral.all() and all(
                t.isdigit() and len(t) <= 3 and max(t) <= ord("7") for t in tokens):
            values = np.array([int(t, 8) for t in tokens], np.float64)  # unpadded octal: 377 330 377 ...
        bytes_ = integral & (values >= 0) & (values <= 255)
        kinds = (("bytes", bytes_),
                 ("levels", ~bytes_.all() & (values >= 0) & (values <= 65535)),  # 10-, 16-bit, floats of 0..255
                 ("normalised", (values >= -3) & (values <= 3)),  # 0..1, -1..1, a network's normalised input
                 ("signed bytes", integral & (values >= -128) & (values <= 127) & (values < 0).any()))
        for kind, fits in kinds:
            for start, end in _stretches(fits):
                found = _judged(values[start:end] % 256 if kind == "signed bytes" else values[start:end],
                                kind in ("bytes", "signed bytes"))
                if found is not None:
                    return found
    return None


def _stretches(fits: np.ndarray) -> list[tuple[int, int]]:
    """The runs of ``True`` in ``fits`` of at least ``_LEAST_PIXELS``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], fits.astype(np.int8), [0]])))
    return [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= _LEAST_PIXELS]


def _judged(values: np.ndarray, byte_values: bool) -> str | None:
    distinct = len(np.unique(values))
    if distinct < 16:
        return None
    if byte_values:
        header = _picture_header(bytes(values[:24].astype(np.uint8)))
        if header is not None:
            return f"a {header} as a list of byte values"
    ratios = {lag: _nearby(values, lag) for lag in (1, 2, 3, 4)}
    # RGBA's fourth next is the same channel, where every fourth value is an alpha, opaque or clear (box
    # tracks and quaternions are alike at every fourth step too, with no such channel).
    alpha = set(np.unique(values[3::4]).tolist()) in ({255.0}, {0.0, 255.0}, {1.0}, {0.0, 1.0})
    smooth = min(ratios[1], ratios[3]) < 0.5 or (alpha and ratios[4] < 0.5)
    if smooth and _has_rows(values, alpha):
        return f"{len(values)} numbers that vary as a picture's pixels do"
    if byte_values and distinct >= 160 and min(ratios.values()) > 0.8:
        return f"{len(values)} byte values as decimal numbers"
    return None


def _nearby(values: np.ndarray, lag: int) -> float:
    """How much values ``lag`` apart differ, against two of the same channel (position mod ``lag``) at random."""
    rng = np.random.default_rng(0)
    channels = [values[k::lag] for k in range(lag)]
    at_random = np.mean([np.abs(c - c[rng.permutation(len(c))]).mean() for c in channels])
    return float(np.abs(values[lag:] - values[:-lag]).mean() / at_random) if at_random else 1.0


def _has_rows(values: np.ndarray, alpha: bool = False) -> bool:
    """Whether ``values`` (one channel, or three or four interleaved) are rows of a picture: their autocorrelation
    peaks at some row length of 8 or more values (the pixel below is like the pixel above), far above its
    level half a row along; a smooth series falls away from its neighbours and never comes back."""
    for channels in (1, 3, 4) if alpha else (1, 3):
        series = values[: 1 << 16: channels]
        series = series - series.mean()
        n = len(series)
        if n < 64 or not series.any():
            continue
        spectrum = np.fft.rfft(series, 2 * n)
        correlation = np.fft.irfft(spectrum * np.conj(spectrum))[: n // 2]
        correlation = correlation / correlation[0] * n / (n - np.arange(len(correlation)))  # unbiased
        r = correlation
        lags = np.arange(8, n // 8)  # rows of 8 values or more, 8 rows or more
        if not len(lags):
            continue
        peak = (r[lags] > 0.5) & (r[lags] - r[lags // 2] > 0.25) & (r[lags] >= r[lags - 1]) & (r[lags] >= r[lags + 1])
        # ... and the row after next is like it too, more than the rows half-way between are
        peak &= r[2 * lags] - r[lags + lags // 2] > 0.1
        if peak.any():
            return True
    return False


def _as_numbers(tokens: list[bytes]) -> np.ndarray | None:
    """``tokens`` as floats, or the longest stretch of them that are numbers; ``None`` for none."""
    try:
        return np.array(tokens).astype(np.float64)
    except ValueError:  # a lone "-" or "e" between numbers: take the longest stretch of real numbers
        best: list[float] = []
        stretch: list[float] = []
        for token in [*tokens, b"-"]:
            try:
                stretch.append(float(token))
            except ValueError:
                best, stretch = max(best, stretch, key=len), []
        return np.array(best, np.float64) if best else None


def _pieces(window: bytes) -> str | None:
    """A picture written in pieces (see ``_HEX_PIECE``): what it is, or ``None``."""
    # Pairs with separators between them (ff:d8:ff), and the 0x before a number, removed.
    digits = window.replace(b"0x", b"").replace(b"0X", b"").translate(None, _NOT_HEX).lower()
    if any(magic in digits for magic in _HEX_MAGIC):
        found = _picture_in_chain(window, _HEX_PIECE, _hex_picture, 128, _HEX_LETTERS)
        if found is not None:
            return f"a {found} as hex in pieces"
    if any(start in window for start in _PIECE_STARTS):
        found = _picture_in_chain(window, _BASE64_PIECE, _base64_picture, 96)
        if found is not None:
            return f"a {found} as base64 in pieces"
    for match in _BITS.finditer(window):
        bits = match.group().translate(None, b" \t\r\n\x0b\x0c,;.")
        # Data spelled in bits flips every other digit; a mask of 0 and 1 (a label, not a face) seldom does.
        if bits.count(b"01") + bits.count(b"10") >= 0.1 * len(bits):  # neither overlaps itself: every flip
            return "binary data as binary digits"
    return None


def _zeros_and_ones(digits: bytes) -> bool:
    return not digits.translate(None, b"01 \t\r\n")


def _picture_in_chain(window: bytes, piece: re.Pattern[bytes], picture: Callable[[bytes], str | None],
                      least: int, needs: re.Pattern[bytes] | None = None) -> str | None:
    """The picture whose header starts one of the pieces of ``window`` (joined with those that follow it, at
    most ``_PIECE_GAP`` other characters apart) and that goes on for ``least`` characters, in which ``needs``
    (if given) occurs; or ``None``."""
    chain: list[bytes] = []
    starts: list[int] = []
    last, total = -_PIECE_GAP - 1, 0
    for match in [*piece.finditer(window), None]:
        if match is None or match.start() - last > _PIECE_GAP:
            joined = b"".join(chain)
            for offset in starts:
                if len(joined) - offset < least:
                    break
                name = picture(joined[offset:offset + 24])
                if name is not None and (needs is None or needs.search(joined, offset, offset + least)):
                    return name
            chain, starts, total = [], [], 0
            if match is None:
                return None
        text = match.group(match.lastindex or 0)
        starts.append(total)
        chain.append(text)
        last, total = match.end(), total + len(text)
    return None


def _hex_picture(digits: bytes) -> str | None:
    try:
        data = bytes.fromhex(digits[:16].decode("ascii"))
    except ValueError:
        return None
    swapped = b"".join(data[i:i + 4][::-1] for i in range(0, len(data) - 3, 4))  # little-endian words
    return _picture_header(data) or _picture_header(swapped)


def _base64_picture(text: bytes) -> str | None:
    """The picture ``text`` starts with in base64, base32 or base32hex (either case), if any."""
    import base64
    import binascii

    for decode in (base64.b64decode, lambda t: base64.b32decode(t.upper()),
                   lambda t: base64.b32hexdecode(t.upper())):
        try:
            found = _picture_header(decode(text[:16]))
        except (ValueError, binascii.Error):
            continue
        if found is not None:
            return found
    return None


def _piece_starts() -> frozenset[bytes]:
    """The first four characters of a picture's first bytes in base64, base32 and base32hex, either case."""
    import base64

    heads = (b"\xff\xd8\xff", b"\x89PN", b"GIF", b"RIF", b"II*", b"MM\x00")
    found = {start[:4] for start in _BASE64_STARTS}
    for head in heads:
        for encode in (base64.b32encode, base64.b32hexencode):
            found |= {encode(head)[:4], encode(head)[:4].lower()}
    return frozenset(found)


_PIECE_STARTS = _piece_starts()

# Base85 (Python's base64.b85encode, git's binary patches) and Z85 (ZeroMQ): the same values in two alphabets,
# where ascii85's spread rule misses a small picture. A picture's first four bytes are one group of five.
_B85 = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%&()*+-;<=>?@^_`{|}~"
_Z85 = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
_FROM_Z85, _TO_Z85 = bytes.maketrans(_Z85, _B85), bytes.maketrans(_B85, _Z85)


def _base85_starts() -> tuple[re.Pattern[bytes], frozenset[bytes]]:
    """A pattern of a picture's first four bytes in base85 or Z85, and their first three characters (a dozen:
    a text with none of them holds no such picture)."""
    import base64

    heads = [b"\xff\xd8\xff" + bytes([marker]) for marker in range(0xC0, 0x100)]
    heads += [b"\x89PNG", b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*"]
    starts = {base64.b85encode(head) for head in heads}
    starts |= {start.translate(_TO_Z85) for start in starts}
    either = re.escape(bytes(sorted(set(_B85) | set(_Z85))))
    pattern = re.compile(b"(?<![" + either + b"])(?:" + b"|".join(re.escape(start) for start in sorted(starts)) + b")")
    return pattern, frozenset(start[:3] for start in starts)


_BASE85_STARTS, _BASE85_PREFIXES = _base85_starts()


def _base85(text: bytes) -> str | None:
    """A picture in base85 or Z85 (its first four bytes, then 75 more characters of the alphabet), or
    ``None``."""
    import base64

    if not any(prefix in text for prefix in _BASE85_PREFIXES):
        return None
    for match in _BASE85_STARTS.finditer(text):
        run = text[match.start():match.start() + 80]
        for alphabet, to_b85 in ((_B85, None), (_Z85, _FROM_Z85)):
            if len(run.translate(None, alphabet)) or len(run) < 80:
                continue  # not 80 characters of this alphabet in a row
            try:
                data = base64.b85decode(run if to_b85 is None else run.translate(to_b85))
            except ValueError:
                continue
            name = _picture_header(data)
            if name is not None:
                return f"a {name} as base85"
    return None


def _picture_header(data: bytes) -> str | None:
    """The picture format ``data`` starts with (:func:`_image_signature`) where its signature is long enough
    not to come up by chance at the start of some piece of a long list of random ids: a JPEG's checked up to
    its first marker; not the two- or three-byte ones (PNM, SGI, JPEG XL's bare codestream)."""
    if data[:3] == b"\xff\xd8\xff" and not (len(data) > 3 and data[3] >= 0xC0):
        return None
    name = _image_signature(data)
    if name in ("pnm", "sgi") or name == "jpegxl" and data[:2] == b"\xff\x0a":
        return None
    return name.upper() if name else None


def _spread(run: bytes, least: int, ascii85: bool = False) -> bool:
    """Whether some 64 characters of ``run`` hold ``least`` different ones (ascii85: and use its full range).

    COCO's compressed masks are strings of '0'..'o', 64 symbols of the ascii85 range: ascii85 data also uses
    the other 21 (one character in four), so it takes 8 of them in the same 64 to count.
    """
    for i in range(0, len(run) - 63, 16):
        window = run[i:i + 64]
        if len(set(window)) >= least and (not ascii85 or len(window.translate(None, _COCO_RLE)) >= 8):
            return True
    return False


_COCO_RLE = bytes(range(48, 112))


def _hex_dump(window: bytes) -> str | None:
    digits, data, hex_only = 0, [], False  # hex_only: a digit other than 0 and 1 (rows of a mask are not data)
    for line in window.split(b"\n"):
        match = _DUMP_LINE.fullmatch(line)
        if match is None or len(hex_digits := match.group("hex").translate(None, b" \t")) < 16:
            if line.strip():
                digits, data, hex_only = 0, [], False
            continue
        digits += len(hex_digits)
        data.append(hex_digits)
        hex_only = hex_only or not _zeros_and_ones(hex_digits)
        if digits > 128 and hex_only:
            return f"{_hex_kind(b''.join(data))} as a hex dump"
    return None


def _hex_kind(digits: bytes) -> str:
    try:
        return _magic_name(bytes.fromhex(digits[: len(digits) // 2 * 2].decode("ascii")))
    except ValueError:
        return "binary data"


def _unescape(run: bytes) -> bytes | None:
    digits = _ESCAPE.split(run)
    try:
        if all(len(d) == 3 and d.isdigit() and max(d) <= ord("7") for d in digits if d):  # octal, escaped or not
            return bytes(int(d, 8) for d in digits if d)
        return bytes.fromhex(b"".join(digits).decode("ascii"))
    except ValueError:
        return None


def _decoded_kind(run: bytes, name: str) -> str:
    import base64
    import binascii

    try:
        if name == "ascii85":
            data = base64.a85decode(run.removeprefix(b"<~")[:80], adobe=False)
        elif name == "base32":
            data = base64.b32decode(run[:64], casefold=True)
        else:
            data = base64.b64decode(run[:64].replace(b"-", b"+").replace(b"_", b"/"))
    except (ValueError, binascii.Error):
        return "binary data"
    return _magic_name(data)


def _magic_name(data: bytes) -> str:
    """``a JPEG`` for data that starts like a picture or video, else ``binary data``."""
    name = _image_signature(data) or _container_signature(data)
    return f"a {name.upper()}" if name else "binary data"


def _probe(path: Path, signature: str | None) -> Sniffed:
    """Ask FFmpeg which streams ``path`` holds; ``signature`` is the container its first bytes suggest."""
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            demuxer = container.format.name
            video = [s for s in container.streams.video if _codec_name(s) not in _TEXT_ART_CODECS]
            others = sorted({s.type for s in container.streams} - {"video"})
    except Exception as exc:  # noqa: BLE001 - FFmpeg errors, and PyAV's own on odd files: "cannot open"
        if signature is not None:
            # It starts like a media container but FFmpeg cannot open it: fail it, never copy it.
            reason = f"looks like {signature} but FFmpeg cannot open it ({type(exc).__name__})"
            return Sniffed("video", signature, reason)
        return Sniffed("other", "unknown", "no image or video decoder recognises it")
    if video:
        if demuxer == "image2" or demuxer.endswith("_pipe") or demuxer in ("ico", "xpm"):
            codec = _codec_name(video[0]) or demuxer.removesuffix("_pipe")
            return Sniffed("image", codec, f"{codec} image data")
        name = signature or demuxer.split(",")[0]
        return Sniffed("video", name, f"{name} with a video stream")
    detail = ", ".join(others) if others else "no streams"
    return Sniffed("other", "audio" if "audio" in others else "data", f"no picture stream ({demuxer}: {detail})")


def _codec_name(stream: av.stream.Stream) -> str:
    context = getattr(stream, "codec_context", None)
    return getattr(context, "name", None) or ""
