"""Keys found in a text file of keys, as ``ssh-keygen -l`` reads one.

A file may hold plain public keys, authorized_keys lines (options first) or known_hosts
lines (host names first). Each line yields at most one key, with the comment OpenSSH
would print beside its fingerprint; lines that hold no key are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from keytools.errors import SshError
from keytools.public import PublicKey, read_key_token

_WS = " \t"


@dataclass(frozen=True)
class ListedKey:
    key: PublicKey
    #: trailing comment, else the skipped leading field (host names or options), else None
    comment: str | None
    line_number: int


def _try_key(text: str) -> tuple[PublicKey, str] | None:
    try:
        return read_key_token(text)
    except SshError:
        return None


def _leading_integer(text: str) -> bool:
    """True for an SSH-1 style "bits e n" line, which OpenSSH does not skip past."""
    digits = len(text) - len(text.lstrip("+-0123456789"))
    if digits == 0 or digits >= len(text) or text[digits] not in _WS:
        return False
    try:
        return int(text[:digits]) != 0
    except ValueError:
        return False


def _split_leading_field(text: str) -> tuple[str, str] | None:
    """Split off the first field, honouring double quotes (authorized_keys options)."""
    quoted = False
    i = 0
    while i < len(text) and (quoted or text[i] not in _WS):
        if text[i] == "\\" and text[i + 1 : i + 2] == '"':
            i += 1
        elif text[i] == '"':
            quoted = not quoted
        i += 1
    if i >= len(text):
        return None
    return text[:i], text[i + 1 :]


def scan_key_lines(lines: Iterable[str]) -> Iterator[ListedKey]:
    for number, raw in enumerate(lines, 1):
        line = raw.split("\n", 1)[0].lstrip(_WS)
        if not line or line.startswith("#"):
            continue
        comment: str | None = None
        found = _try_key(line)
        if found is None:
            rest = line
            if not _leading_integer(line):
                split = _split_leading_field(line)
                if split is None:
                    continue
                comment, rest = split
            found = _try_key(rest)
            if found is None:
                continue
        key, after = found
        after = after.lstrip(_WS)
        if after and not after.startswith("#"):
            comment = after
        yield ListedKey(key, comment, number)
