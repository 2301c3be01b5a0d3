"""The RFC 4716 ("SSH2", ssh.com) public key armour that ``ssh-keygen -e`` and ``-i`` use.

Export writes exactly what OpenSSH writes. Import reads the way ``ssh-keygen -i`` reads,
quirks included, so the same files are accepted and refused: a line starting with
``----`` or containing ``": "`` is a header (or marker) and skipped, a line ending in a
backslash makes the next non-header line be skipped as its continuation, the first
marker line containing `` END `` stops reading, an unterminated last line is ignored,
and the base64 is checked as OpenBSD's b64_pton checks it (whitespace anywhere, strict
padding, zero slack bits). The same armour can hold an ssh.com *private* key; that is
reported (``Rfc4716Payload.private``) so the caller hands the payload to the SSH2
private-key reader instead.

Error messages are ssh-keygen's whole stderr line (``do_convert_from_ssh2: ...``).
"""

from __future__ import annotations

import binascii
import re
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keytools.errors import InvalidFormat, KeyTypeUnknown, SshError
from keytools.wire import Reader

if TYPE_CHECKING:
    from keytools.public import PublicKey

PUBLIC_BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----"
PUBLIC_END = "---- END SSH2 PUBLIC KEY ----"
PRIVATE_BEGIN = "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----"
PRIVATE_END = "---- END SSH2 ENCRYPTED PRIVATE KEY ----"

#: base64 line width of the export (OpenSSH's sshbuf_dtob64_string with wrapping).
LINE_WIDTH = 70
#: ssh-keygen formats the comment into a 61-byte buffer (RFC 4716 section 3.3 limit).
COMMENT_MAX = 60
#: ssh-keygen's line buffer (1024) and base64 accumulator (8096), both NUL-terminated.
_LINE_MAX = 1023
_ENCODED_MAX = 8095

_FUNC = "do_convert_from_ssh2"
_EOL = re.compile(r"\r\n?|\n")
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_CHARS = frozenset(_B64_ALPHABET)
# isspace() in the C locale.
_C_SPACE = " \t\n\v\f\r"
_DROP_SPACE = str.maketrans("", "", _C_SPACE)


@dataclass(frozen=True)
class Rfc4716Payload:
    """The decoded base64 of an RFC 4716 block and whether it was a private key block."""

    blob: bytes
    private: bool


def default_rfc4716_comment(key: PublicKey, user: str, host: str) -> str:
    """ssh-keygen's export comment, cut to 60 bytes as its snprintf does."""
    from keytools.public import type_label

    text = f"{key.bits}-bit {type_label(key)}, converted by {user}@{host} from OpenSSH"
    raw = text.encode("utf-8", "surrogateescape")[:COMMENT_MAX]
    return raw.decode("utf-8", "surrogateescape")


def export_rfc4716(key: PublicKey, comment: str) -> str:
    """``ssh-keygen -e -m RFC4716`` output: markers, quoted comment, 70-column base64.

    A certificate is exported whole (not as its plain key), as OpenSSH does.
    """
    b64 = b64encode(key.blob()).decode("ascii")
    lines = [b64[i : i + LINE_WIDTH] for i in range(0, len(b64), LINE_WIDTH)]
    return "".join(
        (PUBLIC_BEGIN, "\n", f'Comment: "{comment}"\n', *(f"{ln}\n" for ln in lines),
         PUBLIC_END, "\n")
    )


def _as_bytes_text(text: str | bytes) -> str:
    """One character per input byte, so the C buffer limits apply as in ssh-keygen."""
    if isinstance(text, bytes):
        return text.decode("latin-1")
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _lines(text: str) -> Iterator[str]:
    """Lines as ssh-keygen's get_line() returns them (CR, LF or CRLF ends a line).

    An unterminated last line is never returned; an over-long line is fatal once read.
    """
    pos = 0
    for m in _EOL.finditer(text):
        line = text[pos : m.start()]
        if len(line) >= _LINE_MAX:
            raise InvalidFormat("input line too long.")
        yield line
        pos = m.end()
    if len(text) - pos > _LINE_MAX:
        raise InvalidFormat("input line too long.")


def _collect(text: str) -> tuple[str, bool]:
    """The concatenated base64 lines and the private-key flag, as ssh-keygen gathers them."""
    encoded = ""
    escaped = 0
    private = False
    for line in _lines(text):
        if line.endswith("\\"):
            escaped += 1
        cline = line.split("\0", 1)[0]  # C string functions stop at a NUL
        if cline.startswith("----") or ": " in cline:
            if PRIVATE_BEGIN in cline:
                private = True
            if " END " in cline:
                break
            continue
        if escaped:
            escaped -= 1
            continue
        if len(encoded) < _ENCODED_MAX:
            encoded = (encoded + cline)[:_ENCODED_MAX]
    # ssh-keygen drops a "===" tail that some ssh.com versions wrote.
    if len(encoded) % 4 == 3 and encoded.endswith("==="):
        encoded = encoded[:-3]
    return encoded, private


def b64_pton(text: str) -> bytes:
    """Decode base64 with OpenBSD b64_pton's rules; raise InvalidFormat where it fails.

    Whitespace is skipped anywhere; after the data only ``=``/``==`` padding (with
    whitespace around it) may follow, and the unused bits before padding must be zero.
    """
    head, pad, tail = text.partition("=")
    data = head.translate(_DROP_SPACE)
    if not _B64_CHARS.issuperset(data):
        raise InvalidFormat()
    state = len(data) % 4
    if not pad:
        if state:
            raise InvalidFormat()
    else:
        rest = tail.translate(_DROP_SPACE)
        if state in (0, 1) or rest != ("=" if state == 2 else ""):
            raise InvalidFormat()
        # the slack bits of the last character must be zero (no subliminal channel)
        last = _B64_ALPHABET.index(data[-1])
        if last & (0x0F if state == 2 else 0x03):
            raise InvalidFormat()
        data += "=" * (4 - state)
    try:
        return binascii.a2b_base64(data.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):  # pragma: no cover - validated above
        raise InvalidFormat() from None


def rfc4716_payload(text: str | bytes) -> Rfc4716Payload:
    """Gather and decode the base64 of an RFC 4716 block as ``ssh-keygen -i`` does.

    Bytes are taken as they are; a str is treated as its UTF-8 encoding.
    """
    encoded, private = _collect(_as_bytes_text(text))
    try:
        blob = b64_pton(encoded)
    except InvalidFormat:
        raise InvalidFormat(f"{_FUNC}: base64 decode: invalid format") from None
    return Rfc4716Payload(blob, private)


def is_ssh2_private(text: str | bytes) -> bool:
    """True when ssh-keygen would read ``text`` as an ssh.com private key block.

    Decided by the marker lines alone (the base64 is not checked here).
    """
    return _collect(_as_bytes_text(text))[1]


def _decode_key(blob: bytes) -> PublicKey:
    """sshkey_fromb(): a whole key or certificate blob (CA signature checked), with
    OpenSSH's error words for a bad type name or trailing bytes."""
    import keytools.public  # noqa: F401  (registers every key and certificate type)
    from keytools.certificate import Certificate
    from keytools.public.base import decode_body

    r = Reader(blob)
    try:
        raw_name = r.string()
    except SshError:
        raise InvalidFormat() from None
    if b"\0" in raw_name:
        raise InvalidFormat()
    try:
        name = raw_name.decode("ascii")
    except UnicodeDecodeError:
        raise KeyTypeUnknown() from None
    key = decode_body(name, r)
    if isinstance(key, Certificate):
        key.check_signature()  # sshkey_fromb verifies the CA signature while parsing
    if r.remaining:
        raise InvalidFormat()
    return key


def import_rfc4716(text: str | bytes) -> PublicKey:
    """The public key (or certificate) in an RFC 4716 block, as ``ssh-keygen -i`` reads it.

    A private key block raises InvalidFormat: check is_ssh2_private() first, or use
    rfc4716_payload() and give ``blob`` to the SSH2 private-key reader.
    """
    payload = rfc4716_payload(text)
    if payload.private:
        raise InvalidFormat(f"{_FUNC}: SSH2 private key block, not a public key")
    try:
        return _decode_key(payload.blob)
    except SshError as exc:
        raise type(exc)(f"{_FUNC}: parse key: {exc}") from None
