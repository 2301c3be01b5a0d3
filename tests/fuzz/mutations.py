"""One mutation strategy for the fuzz tests: small byte-level edits of valid inputs.

Edits flip, set, insert, delete or cut bytes, or overwrite four bytes with a length
value a parser may trust (0, 1, just past the data, 2^31-1, 2^32-1, 2^27+1).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

_LENGTHS = (0, 1, 3, 8, 255, 0x7FFFFFFF, 0xFFFFFFFF, 0x8000001)


@st.composite
def mutation(draw: st.DrawFn, base: bytes, max_edits: int = 4) -> bytes:
    """``base`` with one to ``max_edits`` edits."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, max_edits))):
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate", "length")))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "set" and data:
            data[pos] = draw(st.sampled_from((0, 0xFF, 0x7F, 0x80, 1)))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        elif op == "delete" and data:
            del data[pos : pos + draw(st.integers(1, 12))]
        elif op == "truncate":
            del data[pos:]
        elif op == "length" and len(data) >= pos + 4:
            data[pos : pos + 4] = draw(st.sampled_from(_LENGTHS)).to_bytes(4, "big")
    return bytes(data)


def mutated_from(samples: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """One of ``samples``, mutated."""
    return st.sampled_from(list(samples)).flatmap(mutation)
