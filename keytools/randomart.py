"""The "drunken bishop" fingerprint picture of ``ssh-keygen -lv`` (OpenSSH's randomart).

Following Perrig and Song's hash visualisation idea: a walker starts in the middle of a
17x9 field and, for each 2-bit group of the digest (low bits of each byte first), steps
diagonally (bit 0: right/left, bit 1: down/up), stopping at the walls. Each visit
raises a cell's count; counts map to `` .o+=*BOX@%&#/^`` and the start and end cells
are drawn as ``S`` and ``E``. The frame carries ``[TYPE BITS]`` on top and ``[HASH]``
below, centred as OpenSSH centres them (including its 16-character title limit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytools.fingerprint import DEFAULT_HASH, digest_label, fingerprint_raw

if TYPE_CHECKING:
    from keytools.public import PublicKey

FIELD_WIDTH = 17
FIELD_HEIGHT = 9
SYMBOLS = " .o+=*BOX@%&#/^SE"
_START = len(SYMBOLS) - 2  # "S"
_END = len(SYMBOLS) - 1  # "E"
_MAX_VISITS = len(SYMBOLS) - 3  # visit counts saturate at "^"
# OpenSSH formats the title into a 17-byte buffer: at most 16 characters survive.
_TITLE_MAX = FIELD_WIDTH - 1


def _title(label: str, bits: int) -> str:
    """``[TYPE BITS]``, or ``[TYPE]`` when that does not fit, cut to 16 characters."""
    full = f"[{label} {bits}]"
    # snprintf's result is only rejected when it exceeds the buffer (17) in length;
    # a 17-character result is kept, truncated by one.
    if len(full) > FIELD_WIDTH:
        full = f"[{label}]"
    return full[:_TITLE_MAX]


def _border(text: str) -> str:
    left = (FIELD_WIDTH - len(text)) // 2
    return "+" + "-" * left + text + "-" * (FIELD_WIDTH - left - len(text)) + "+"


def randomart_from_digest(digest: bytes, label: str, bits: int, hash_title: str) -> str:
    """The framed picture for a raw digest; ``label``/``bits`` make the title."""
    counts = [[0] * FIELD_WIDTH for _ in range(FIELD_HEIGHT)]
    x, y = FIELD_WIDTH // 2, FIELD_HEIGHT // 2
    for byte in digest:
        for shift in (0, 2, 4, 6):
            step = byte >> shift
            x = min(max(x + (1 if step & 1 else -1), 0), FIELD_WIDTH - 1)
            y = min(max(y + (1 if step & 2 else -1), 0), FIELD_HEIGHT - 1)
            if counts[y][x] < _MAX_VISITS:
                counts[y][x] += 1
    counts[FIELD_HEIGHT // 2][FIELD_WIDTH // 2] = _START
    counts[y][x] = _END
    rows = ["|" + "".join(SYMBOLS[c] for c in row) + "|" for row in counts]
    top = _border(_title(label, bits))
    bottom = _border(f"[{hash_title}]"[:_TITLE_MAX])
    return "\n".join([top, *rows, bottom])


def randomart(key: PublicKey, hash_name: str = DEFAULT_HASH) -> str:
    """The picture ``ssh-keygen -lv -E hash_name`` prints under the fingerprint line.

    No trailing newline. A certificate is drawn from its plain key's digest under a
    ``[ED25519-CERT]``-style title, as OpenSSH does.
    """
    from keytools.public import type_label

    return randomart_from_digest(
        fingerprint_raw(key, hash_name), type_label(key), key.bits, digest_label(hash_name)
    )
