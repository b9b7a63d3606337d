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

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import av

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
        kind = "video" if image == "gif" else "image"  # animated GIFs are read as videos
        return Sniffed(kind, image, f"{image.upper()} data")
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
        return Sniffed("other", "text", "text")
    return _probe(path, None)


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


def embedded_picture(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str | None:
    """The first picture a text file carries inline, as a ``data:`` URI or bare base64, else ``None``.

    Label files can hold whole photos: LabelMe's JSON keeps the image in ``imageData``, HTML and SVG embed
    ``data:image/...;base64,`` URIs. Such a file is not an image by its content type, yet copying it copies
    faces. The whole file is read, in chunks, so call this only for text about to be copied.
    """
    overlap = 64
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            window = tail + block
            match = _EMBEDDED.search(window)
            if match is not None:
                if match.group("uri"):
                    return match.group("uri").decode("ascii", "replace")
                return f"base64 {_BASE64_STARTS[match.group('base64')]}"
            tail = window[-overlap:]
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
