"""Bubble Babble (Antti Huima's pronounceable digest encoding), as ``ssh-keygen -B`` prints.

OpenSSH always babbles the SHA-1 digest of the plain key blob.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keytools.fingerprint import fingerprint_raw

if TYPE_CHECKING:
    from keytools.public import PublicKey

_VOWELS = "aeiouy"
_CONSONANTS = "bcdfghklmnprstvzx"


def bubblebabble_digest(raw: bytes) -> str:
    """Encode ``raw``: ``x`` + one 5-letter group per byte pair joined by ``-`` + ``x``."""
    out = ["x"]
    seed = 1
    rounds = len(raw) // 2 + 1
    for i in range(rounds):
        if i + 1 < rounds or len(raw) % 2:
            a = raw[2 * i]
            out.append(_VOWELS[(((a >> 6) & 3) + seed) % 6])
            out.append(_CONSONANTS[(a >> 2) & 15])
            out.append(_VOWELS[((a & 3) + seed // 6) % 6])
            if i + 1 < rounds:
                b = raw[2 * i + 1]
                out.append(_CONSONANTS[(b >> 4) & 15])
                out.append("-")
                out.append(_CONSONANTS[b & 15])
                seed = (seed * 5 + a * 7 + b) % 36
        else:
            out.append(_VOWELS[seed % 6])
            out.append(_CONSONANTS[16])
            out.append(_VOWELS[seed // 6])
    out.append("x")
    return "".join(out)


def bubblebabble(key: PublicKey) -> str:
    """The ``ssh-keygen -B`` string for ``key`` (SHA-1 of the plain key blob)."""
    return bubblebabble_digest(fingerprint_raw(key, "sha1"))
