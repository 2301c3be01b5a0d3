"""ssh-keygen's KRL specification files (the ``-k`` arguments), line by line as
update_krl_from_file() reads them.

Lines: ``serial: N`` or ``serial: LO-HI`` (C strtoull syntax: decimal, 0x hex, 0 octal),
``id: KEY_ID``, ``hash: SHA256:base64``, ``key:``/``sha1:``/``sha256:`` followed by a
public key, or a bare public key or certificate. ``#`` starts a comment. Errors carry
ssh-keygen's fatal() text, with the file name and line number.

A file of nothing but canonical ``serial: N`` lines (the 100,000-serial case) is read in
bulk: one split, one int conversion pass, no Python work per line.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from keytools.errors import (
    InvalidArgument,
    KeyTypeUnknown,
    MessageIncomplete,
    SshError,
    UnexpectedTrailingData,
)
from keytools.krl.model import Krl
from keytools.krl.serials import U64_MAX

if TYPE_CHECKING:
    from keytools.public import PublicKey


class KrlSpecError(SshError):
    """A spec line ssh-keygen would die on; the message is its fatal() text."""


_SPACE = " \t"
_CSPACE = " \t\n\v\f\r"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def strtoull(text: str) -> tuple[int, int, bool]:
    """C's strtoull(text, &end, 0): (value, index of the first unparsed character,
    overflowed). Like C, a minus sign negates modulo 2**64 and no digits gives end 0."""
    i = 0
    n = len(text)
    while i < n and text[i] in _CSPACE:
        i += 1
    negative = False
    if i < n and text[i] in "+-":
        negative = text[i] == "-"
        i += 1
    base = 10
    if text.startswith(("0x", "0X"), i) and i + 2 < n and \
            text[i + 2].lower() in _DIGITS[:16]:
        base = 16
        i += 2
    elif text.startswith("0", i):
        base = 8
    start = i
    allowed = _DIGITS[:base]
    while i < n and text[i].lower() in allowed:
        i += 1
    if i == start:
        return 0, 0, False
    value = int(text[start:i], base)
    if value > U64_MAX:
        return U64_MAX, i, True
    if negative:
        value = (-value) & U64_MAX
    return value, i, False


def _clean(line: bytes) -> bytes:
    """Strip leading blanks, a comment, the newline and trailing blanks, as ssh-keygen."""
    line = line.split(b"\0", 1)[0].lstrip(b" \t")
    cut = re.search(rb"[#\n]", line)
    if cut is not None:
        line = line[:cut.start()]
    return line.rstrip(b" \t")


def _keyword(line: bytes, word: bytes) -> bytes | None:
    """The text after ``word`` (matched case-insensitively) and blanks, or None."""
    if line[:len(word)].lower() != word:
        return None
    return line[len(word):].lstrip(b" \t")


def hash_to_blob(text: str, file: str, lnum: int) -> bytes:
    """``hash:`` lines: an unpadded base64 SHA256 fingerprint."""
    if not text.startswith("SHA256:"):
        raise KrlSpecError(f"{file}:{lnum}: unsupported hash algorithm")
    encoded = text[7:]
    encoded += "=" * (-len(encoded) % 4)
    try:
        return binascii.a2b_base64("".join(encoded.split()).encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KrlSpecError(f"{file}:{lnum}: decode hash failed: invalid format") from None


def _type_truncated(text: str) -> bool:
    """Whether the key blob ends inside its type name, which sshkey_from_blob() reports
    as an invalid format rather than an incomplete message."""
    from keytools.wire import Reader

    try:
        blob = binascii.a2b_base64(text.split()[1].encode("ascii"))
        Reader(blob).string()
    except (SshError, binascii.Error, IndexError, UnicodeEncodeError, ValueError):
        return True
    return False


class SpecReader:
    """Applies spec files to a KRL; ``ca`` is the -s key, ``wild_ca`` is ``-s none``."""

    def __init__(self, krl: Krl, ca: PublicKey | None, wild_ca: bool = False,
                 progress: Callable[[int], None] | None = None) -> None:
        self.krl = krl
        self.ca = ca
        self.wild_ca = wild_ca
        self.progress = progress

    def _need_ca(self, what: str) -> None:
        if self.ca is None and not self.wild_ca:
            raise KrlSpecError(f"revoking certificates by {what} requires specification "
                               "of a CA key")

    def apply(self, data: bytes, path: str, file: str | None = None) -> None:
        """Revoke everything ``data`` (a spec file's bytes) lists; ``path`` names it in
        messages (``file``, the name as given, in those about hashes)."""
        file = path if file is None else file
        serials = _bulk_serials(data)
        if serials is not None and serials:
            self._need_ca("serial number")
            # already known to be 1 .. 2**64-1: skip revoke_serials()'s checks
            self.krl.for_ca(self.ca).serials.add_singles(serials)
            if self.progress is not None:
                self.progress(len(serials))
            return
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()
        batch: list[int] = []
        for lnum, raw in enumerate(lines, 1):
            line = _clean(raw)
            if not line:
                continue
            m = _SIMPLE_SERIAL.fullmatch(line)
            if m is not None and (self.ca is not None or self.wild_ca):
                batch.append(int(m.group(1)))
            else:
                if batch:
                    self.krl.revoke_serials(self.ca, batch)
                    batch = []
                self._line(line, path, file, lnum)
            if self.progress is not None and lnum % 4096 == 0:
                self.progress(4096)
        if batch:
            self.krl.revoke_serials(self.ca, batch)
        if self.progress is not None:
            self.progress(len(lines) % 4096)

    def _line(self, line: bytes, path: str, file: str, lnum: int) -> None:
        rest = _keyword(line, b"serial:")
        if rest is not None:
            self._need_ca("serial number")
            self._serial(rest.decode("utf-8", "surrogateescape"), path, lnum)
            return
        rest = _keyword(line, b"id:")
        if rest is not None:
            self._need_ca("key ID")
            self.krl.revoke_key_id(self.ca, rest)
            return
        rest = _keyword(line, b"hash:")
        if rest is not None:
            blob = hash_to_blob(rest.decode("utf-8", "surrogateescape"), file, lnum)
            try:
                self.krl.revoke_sha256(blob)
            except SshError as exc:
                raise KrlSpecError(f"update_krl_from_file: revoke key failed: {exc}") from None
            return
        how = "revoke"
        for word in (b"key:", b"sha1:", b"sha256:"):
            rest = _keyword(line, word)
            if rest is not None:
                how, line = word.decode(), rest
                break
        key = self._key(line.decode("utf-8", "surrogateescape"), path, lnum)
        from keytools.fingerprint import fingerprint_raw

        if how == "key:":
            self.krl.revoke_key_explicit(key)
        elif how == "sha1:":
            self.krl.revoke_sha1(fingerprint_raw(key, "sha1"))
        elif how == "sha256:":
            self.krl.revoke_sha256(fingerprint_raw(key, "sha256"))
        else:
            self.krl.revoke_key(key)

    @staticmethod
    def _key(text: str, path: str, lnum: int) -> PublicKey:
        from keytools.public import read_key_token

        try:
            return read_key_token(text)[0]
        except (KeyTypeUnknown, UnexpectedTrailingData):
            message = "invalid format"  # sshkey_read's word for these
        except MessageIncomplete as exc:
            message = "invalid format" if _type_truncated(text) else str(exc)
        except SshError as exc:
            message = str(exc)
        raise KrlSpecError(f"{path}:{lnum}: invalid key: {message}")

    def _serial(self, text: str, path: str, lnum: int) -> None:
        lo, end, overflow = strtoull(text)
        if not text or (end != len(text) and text[end] != "-"):
            raise KrlSpecError(f'{path}:{lnum}: invalid serial "{text}"')
        if overflow:
            raise KrlSpecError(f"{path}:{lnum}: serial out of range")
        hi = lo
        if end != len(text):
            second = text[end + 1:]
            hi, end, overflow = strtoull(second)
            if not second or end != len(second):
                raise KrlSpecError(f'{path}:{lnum}: invalid serial "{second}"')
            if overflow:
                raise KrlSpecError(f"{path}:{lnum}: serial out of range")
            if hi <= lo:
                raise KrlSpecError(f"{path}:{lnum}: invalid serial range {lo}:{hi}")
        try:
            self.krl.revoke_serial(self.ca, lo, hi)
        except InvalidArgument:
            raise KrlSpecError("update_krl_from_file: revoke serial failed") from None


# "serial: N" with a plain decimal N that cannot overflow, any letter case and blanks.
_SIMPLE_SERIAL = re.compile(rb"(?i:serial:)[ \t]*([1-9][0-9]{0,18})")


class _JsonContext:
    """What the json module's C scanner reads from its decoder: plain numbers only."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo = None


_TO_COMMAS = bytes.maketrans(b"\n", b",")


def _parse_numbers(text: str) -> list[int] | None:
    """``[n,n,...]`` as a list of ints, by the json module's C scanner (imported alone:
    the json package costs more to import than it saves here), or None if malformed."""
    try:
        from _json import make_scanner
    except ImportError:  # pragma: no cover - a Python without the C accelerator
        import json

        try:
            value = json.loads(text)
        except ValueError:
            return None
    else:
        try:
            value, end = make_scanner(_JsonContext())(text, 0)  # type: ignore[arg-type]
        except (StopIteration, ValueError, SystemError):
            # SystemError: the scanner reports syntax errors with json.decoder's
            # exception class, which is not imported here
            return None
        if end != len(text):
            return None
    return value if isinstance(value, list) else None


def _bulk_serials(data: bytes) -> list[int] | None:
    """All serials of a file made only of ``serial: N\\n`` lines (N decimal, no leading
    zero, 1 .. 2**64-1), else None. Checked and converted with whole-buffer operations:
    every line starts with "serial: ", and the bytes that are not digits or newlines
    are exactly that text once per line, so the rest of each line is digits."""
    count = data.count(b"\n")
    if not count or not data.startswith(b"serial: ") or not data.endswith(b"\n") or \
            data.translate(None, b"0123456789\n") != b"serial: " * count or \
            data.count(b"\nserial: ") != count - 1:
        return None
    # "1,22,333," with the words dropped; JSON refuses empty and zero-led numbers
    numbers = data.translate(_TO_COMMAS, b"serial: ")
    serials = _parse_numbers("[" + numbers[:-1].decode("ascii") + "]")
    if not serials or min(serials) < 1 or max(serials) > U64_MAX:
        return None
    return serials
