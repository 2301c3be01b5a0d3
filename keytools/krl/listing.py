"""``ssh-keygen -Q -l``: krl.c's krl_dump() text for a KRL.

Comments and key IDs come from the file, so they are escaped as OpenSSH's asmprintf()
does before they reach a terminal.
"""

from __future__ import annotations

import os
import sys
import time
import unicodedata
from typing import TYPE_CHECKING

from keytools.krl.model import Krl

if TYPE_CHECKING:
    from keytools.public import PublicKey

def _locale_exists(name: str) -> bool:
    import locale

    saved = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, name)
    except locale.Error:
        return False
    locale.setlocale(locale.LC_CTYPE, saved)
    return True


def _utf8_locale() -> bool:
    """Whether OpenSSH's msetlocale() would end up with a UTF-8 character type."""
    if sys.flags.utf8_mode and "PYTHONUTF8" not in os.environ and \
            "utf8" not in sys._xoptions:
        # Python started in the C locale (PEP 540) and may have put LC_CTYPE=C.UTF-8
        # into our environment (PEP 538); OpenSSH would have stayed in C.
        return False
    values = [os.environ.get(name) for name in ("LC_ALL", "LC_CTYPE", "LANG")]
    first = next((value for value in values if value is not None), None)
    if first is None:
        return False

    def utf8(value: str) -> bool:
        return "UTF-8" in value.upper() or "UTF8" in value.upper()

    if first[:2].upper() == "TR":  # Turkish: C, or C.UTF-8 for a UTF-8 locale
        return utf8(first)
    chosen = next((value for value in values if value), "")  # setlocale(LC_CTYPE, "")
    return utf8(chosen) and _locale_exists(chosen)


def sanitize(raw: bytes, utf8: bool | None = None) -> str:
    """OpenSSH's asmprintf(): keep printable characters, write every other byte
    (controls included) as ``\\ooo``. Printable means ASCII in the C locale."""
    if utf8 is None:
        utf8 = _utf8_locale()
    out: list[str] = []
    if not utf8:
        for byte in raw:
            out.append(chr(byte) if 0x20 <= byte < 0x7F else f"\\{byte:03o}")
        return "".join(out)
    for char in raw.decode("utf-8", "surrogateescape"):
        if unicodedata.category(char) in ("Cc", "Cs", "Cn"):
            out.extend(f"\\{byte:03o}" for byte in char.encode("utf-8", "surrogateescape"))
        else:
            out.append(char)
    return "".join(out)


def format_timestamp(seconds: int) -> str:
    """krl.c's format_timestamp(): local time as YYYYMMDDTHHMMSS."""
    try:
        return time.strftime("%Y%m%dT%H%M%S", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):
        return "<INVALID>"


def _fingerprint(key: PublicKey) -> str:
    from keytools.fingerprint import fingerprint

    return fingerprint(key, "sha256")


def krl_listing(krl: Krl, errors: list[str] | None = None) -> str:
    """The dump; explicit-key blobs that do not parse are skipped and reported in
    ``errors`` (OpenSSH logs "parse KRL key")."""
    from keytools.errors import SshError
    from keytools.public import decode_public_blob

    lines = [f"# KRL version {krl.version}", f"# Generated at {format_timestamp(krl.generated)}"]
    if krl.comment:
        lines.append(f"# Comment: {sanitize(krl.comment.encode('utf-8', 'surrogateescape'))}")
    lines.append("")
    for blob in sorted(krl.revoked_keys):
        try:
            key = decode_public_blob(blob)
        except SshError as exc:
            if errors is not None:
                errors.append(f"parse KRL key: {exc}")
            continue
        lines.append(f"hash: {_fingerprint(key)} # {key.key_type}")
    lines.extend(f"hash: SHA256:{digest.hex()}" for digest in sorted(krl.revoked_sha256))
    lines.extend(f"# hash SHA1:{digest.hex()}" for digest in sorted(krl.revoked_sha1))
    for entry in krl.certs:
        lines.append("")
        if entry.ca is None:
            lines.append("# Wildcard CA")
        else:
            lines.append(f"# CA key {entry.ca.key_type} {_fingerprint(entry.ca)}")
        lines.extend(f"serial: {lo}" if lo == hi else f"serial: {lo}-{hi}"
                     for lo, hi in entry.serials.runs())
        lines.extend(f"id: {sanitize(key_id)}" for key_id in sorted(entry.key_ids))
    return "\n".join(lines) + "\n"
