"""The value syntax shared by sshd_config keywords (servconf.c, misc.c): argv_split()
words, convtime() intervals, port numbers, and the fatal error for a value sshd refuses.

One place for these so the parser, the keyword modules and other readers of the same
syntax (auth_files.py splits AuthorizedKeysCommand the same way) agree.
"""

from __future__ import annotations

import re

from keytools.errors import SshError

_TIME_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ConfigError(SshError):
    """A value sshd would refuse: fatal, worded ``path line N: reason``."""


def convtime(text: str) -> int | None:
    """sshd's convtime(): ``90``, ``1m30s``, ``2h``; None if malformed."""
    if not text:
        return None
    total = 0
    for m in re.finditer(r"(\d+)([sSmMhHdDwW]?)|(.)", text):
        if m.group(3) is not None:
            return None
        total += int(m.group(1)) * _TIME_UNITS[m.group(2).lower()]
    return total if total < 2**31 else None


def split_args(text: str) -> list[str] | None:
    """argv_split(): blank-separated words, double quotes group; None if unbalanced."""
    words: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == '"':
            end = text.find('"', i + 1)
            if end < 0:
                return None
            words.append(text[i + 1 : end])
            i = end + 1
            continue
        j = i
        while j < len(text) and text[j] not in " \t":
            j += 1
        words.append(text[i:j])
        i = j
    return words


def _port(value: str) -> int | None:
    if not value.isdigit() or not 0 < int(value) < 65536:
        return None
    return int(value)
