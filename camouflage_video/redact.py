"""Secrets out of every message: credentials, tokens and RTMP stream keys in URLs and ``key=value`` text.

Stream URLs often carry ``user:pass@``, tokens in their query or an RTMP stream key in their path; every log
line, error message, stats file and traceback about a stream goes through :func:`redact_url` first, the one
place that knows what a secret in a URL looks like (:class:`RedactingFilter` does it for log records).
"""

from __future__ import annotations

import logging
import re

_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# host[:port] right after the user-info's '@': a name, an IPv4 address or a bracketed IPv6 address.
_HOST = re.compile(r"(?:\[[0-9A-Za-z:.%]*\]|[A-Za-z0-9._~%-]*)(?::[0-9]*)?")
_HOST_END = frozenset("/?#'\"<>,;)]}") | frozenset(" \t\r\n")
_URL_REST = re.compile(r"[^\s'\"<>]*")  # path, query and fragment run to the next space or quote
_TRAILING = ".,;:)]}!"  # punctuation after a URL in a sentence ("... rtmp://h/app/key: refused")
# hmac, hdnts/hdnea: CDN edge tokens (Akamai); jwt; streamid: an SRT stream's id carries its key.
# login/pw/pas/usr: camera firmwares' login names (Foscam's loginuse/loginpas, usr/pw).
_SECRET_WORDS = re.compile(r"token|key|secret|pass|pwd|pw|pas|login|auth|sig|credential|session|user|usr|hmac|"
                           r"hdnts|hdnea|jwt|streamid",
                           re.IGNORECASE)
# NAME= inside a URL's query or path piece whose NAME (or its end: "channel=1_password=") looks secret.
_SECRET_NAME = re.compile(r"[A-Za-z0-9.-]*(?:" + _SECRET_WORDS.pattern + r")[A-Za-z0-9_.-]*=", re.IGNORECASE)
# NAME=VALUE outside URLs (option dumps, messages) with a secret-looking NAME.
_SECRET_PAIR = re.compile(r"(?<![A-Za-z0-9_.-])(?P<key>[A-Za-z0-9_.-]+)=(?P<value>[^&\s'\",;)]*)")
# 'name': 'value' items of a dict's repr (input options in a message or traceback).
_SECRET_ITEM = re.compile(
    r"(?P<q>['\"])(?P<key>[A-Za-z0-9_.-]+)(?P=q)(?P<sep>\s*:\s*)(?P<vq>['\"])(?P<value>[^'\"]*)(?P=vq)"
)
_PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*")  # usage text: "expected KEY=VALUE" shows no secret
# A path segment whose name says the next one is a secret: /token/<secret>/, /auth/<secret>/ (CDNs, signed URLs).
_SECRET_SEGMENT = re.compile(r"(?:access[_-]?|api[_-]?|stream[_-]?|session[_-]?)?"
                             r"(?:tokens?|keys?|secrets?|auth|sig|signature|session|hmac|jwt|pass|password|pwd)",
                             re.IGNORECASE)
# Pieces of a segment that look random: hex (with or without dashes: UUIDs, hashes), or long letter+digit runs
# (base64url tokens, JWT parts). A word or a camera's path (Streaming/Channels/101, cam/realmonitor) is neither.
_HEX = re.compile(r"(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{16,}")
_RANDOM_RUN = re.compile(r"(?=[A-Za-z0-9+%=]*[0-9])(?=[A-Za-z0-9+%=]*[A-Za-z])[A-Za-z0-9+%=]{16,}")
_LONG_RUN = re.compile(r"[A-Za-z0-9+%=_-]{32,}")  # with a digit or both cases: words joined by _ are no token
#: Schemes whose last path segment after the application is a stream key (YouTube, Twitch, ...).
RTMP_SCHEMES = frozenset({"rtmp", "rtmps", "rtmpe", "rtmpt", "rtmpte", "rtmpts"})
MASK = "***"


def redact_url(text: str) -> str:
    """Hide credentials in a URL, or in any text that contains URLs (error messages, log lines, tracebacks).

    What stays is what a user needs to recognise the stream: scheme, host, port and path. Hidden are:

    - the user-info (``user:pass@`` becomes ``***@``). It ends at the *last* ``@`` before a host, so a
      password with ``@``, ``/``, ``?``, ``#`` or a space is hidden whole, never in part;
    - the values of query and fragment parameters whose names look secret (``password=``, ``token=``,
      ``access_token=``, ``api_key=``, ``streamkey=``, ``sig=``, ... in any case);
    - the stream key of an RTMP URL, its last path segment after the application
      (``rtmp://host/app/KEY`` becomes ``rtmp://host/app/***``);
    - secrets in the path of any URL: the values of secret-looking ``NAME=VALUE`` pieces of a segment (cameras
      that take ``/user=admin&password=...`` or ``/user=admin_password=..._channel=1``), the segment after one
      named like a secret (``/token/SECRET/``), and segments that look random (hex of 16 digits or more, UUIDs,
      runs of 16 or more letters and digits, anything of 32 or more: CDN tokens, signed paths, JWTs). A
      harmless but random-looking name is hidden too: the error is on the side of hiding;
    - outside URLs, the values of ``NAME=VALUE`` pairs and ``'NAME': 'VALUE'`` dict items with such names.

    An ``@`` later in the same line is taken for the end of the user-info when in doubt: a URL may then
    lose more than its credentials, never keep part of them. Applying it twice changes nothing more.

    Examples:
        >>> redact_url("rtsp://admin:s3cret@cam.local:554/stream1")
        'rtsp://***@cam.local:554/stream1'
        >>> redact_url("rtsp://admin:p#ss/w?rd@cam.local/stream1")
        'rtsp://***@cam.local/stream1'
        >>> redact_url("Connection refused: 'rtmp://relay/live/sk-123?access_token=abc&x=1'")
        "Connection refused: 'rtmp://relay/live/***?access_token=***&x=1'"
    """
    pieces, pos = [], 0
    starts = list(_SCHEME.finditer(text))
    for i, match in enumerate(starts):
        if match.start() < pos:
            continue  # inside the user-info of the URL before
        line_end = text.find("\n", match.end())
        region_end = len(text) if line_end < 0 else line_end
        if i + 1 < len(starts):
            region_end = min(region_end, starts[i + 1].start())
        pieces.append(_redact_pairs(text[pos : match.start()]))
        url, length = _redact_one(match.group("scheme"), text, match.end(), region_end)
        pieces.append(text[match.start() : match.end()] + url)
        pos = match.end() + length
    pieces.append(_redact_pairs(text[pos:]))
    return "".join(pieces)


def _redact_one(scheme: str, text: str, start: int, end: int) -> tuple[str, int]:
    """The redacted form of the URL whose authority starts at ``text[start]``, and how much of it was read."""
    at = _userinfo_end(text, start, end)
    host_start = start if at < 0 else at + 1
    host_end = _HOST.match(text, host_start, end).end()
    rest = _URL_REST.match(text, host_end, end).group()
    rest = rest.rstrip(_TRAILING)
    path, query_mark, query = rest.partition("?")
    path, fragment_mark, fragment = path.partition("#") if not query_mark else (path, "", "")
    if query_mark:
        query, fragment_mark, fragment = query.partition("#")
    if scheme.lower() in RTMP_SCHEMES:
        head, slash, key = path.rpartition("/")
        if key and head.strip("/"):  # [/]app[/instance]/key (a malformed port may leave out the first /)
            path = head + slash + MASK
    path = _redact_path(path)
    redacted = (
        ("" if at < 0 else MASK + "@") + text[host_start:host_end] + path
        + query_mark + _redact_params(query) + fragment_mark + _redact_params(fragment)
    )
    return redacted, host_end + len(rest) - start


def _userinfo_end(text: str, start: int, end: int) -> int:
    """Index of the ``@`` that ends the user-info (the last one followed by a host), or -1 if there is none."""
    at = text.rfind("@", start, end)
    while at >= 0:
        host_end = _HOST.match(text, at + 1, end).end()
        if host_end == end or text[host_end] in _HOST_END:
            return at
        at = text.rfind("@", start, at)
    return -1


def _redact_params(params: str) -> str:
    """``a=1&password=x`` → ``a=1&password=***`` (see :func:`_redact_piece`)."""
    if not params:
        return params
    return "&".join(_redact_piece(part) for part in params.split("&"))


def _redact_piece(piece: str) -> str:
    """One ``NAME=VALUE`` piece of a query or a path segment, with its secrets hidden.

    Everything after a secret-looking ``NAME=`` goes, since where its value ends is unknown
    (``channel=1_password=x_stream=0`` → ``channel=1_password=***``); so does a value that looks random, whatever
    its name (nginx's ``md5=``, a CDN's ``st=``), and a piece without a name that looks random.
    """
    secret = _SECRET_NAME.search(piece)
    if secret is not None:
        return piece[: secret.end()] + (MASK if secret.end() < len(piece) else "")
    name, sep, value = piece.partition("=")
    if not sep:
        return MASK if _looks_random(piece) else piece
    return f"{name}={MASK}" if _looks_random(value) else piece


def _redact_path(path: str) -> str:
    """Hide the secrets of a URL's path, segment by segment (see :func:`redact_url`)."""
    segments = path.split("/")
    hide_next = False
    for i, segment in enumerate(segments):
        if not segment or segment == MASK:
            hide_next = False
            continue
        if hide_next:
            segments[i] = MASK
        else:
            segments[i] = _redact_params(segment)
        hide_next = bool(_SECRET_SEGMENT.fullmatch(segment))
    return "/".join(segments)


def _looks_random(segment: str) -> bool:
    if _HEX.search(segment.replace("-", "")):
        return True
    for run in _LONG_RUN.findall(segment):
        if any(c.isdigit() for c in run) or (any(c.isupper() for c in run) and any(c.islower() for c in run)):
            return True
    return any(_RANDOM_RUN.fullmatch(run) for run in re.split(r"[-_.~;,:@!$'()*]", segment))


def _redact_pairs(text: str) -> str:
    if ":" in text:
        text = _SECRET_ITEM.sub(
            lambda m: m.group() if not _SECRET_WORDS.search(m.group("key"))
            else f"{m['q']}{m['key']}{m['q']}{m['sep']}{m['vq']}{MASK}{m['vq']}",
            text,
        )
    if "=" not in text:
        return text
    def hide(match: re.Match[str]) -> str:
        key, value = match.group("key"), match.group("value")
        if not _SECRET_WORDS.search(key) or _PLACEHOLDER.fullmatch(key) and _PLACEHOLDER.fullmatch(value):
            return match.group()
        return f"{key}={MASK}"

    return _SECRET_PAIR.sub(hide, text)


def one_line(text: str) -> str:
    """``text`` with its line breaks written as ``\\n`` and ``\\r``: a name with one in it (a dataset's file)
    must not start a line of its own on the terminal that reads like another message."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials from every record it passes and writes its line breaks as
    ``\\n`` (the CLI installs it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = one_line(redact_url(message))  # one record, one line
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:  # --debug tracebacks quote URLs too
            record.exc_text = redact_url(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact_url(record.stack_info)
        return True
