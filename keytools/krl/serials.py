"""The certificate serial numbers one CA's KRL entry revokes.

A KRL may revoke 100,000 serials or one huge range, and sshd asks about one serial per
login, so the set keeps what it was given in bulk form (a list of single serials, a few
wide ranges, the bitmaps read from a file) and answers membership in O(1)/O(log n)
without ever expanding them. Only the writer and the listing need the canonical sorted
form, which :meth:`SerialSet.normalized` builds with C-level list, set, map and
itertools operations rather than a Python loop per serial.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import compress, islice, repeat
from operator import sub

U64_MAX = (1 << 64) - 1
#: the serial subsection types of a KRL certificates section (PROTOCOL.krl)
SERIAL_LIST = 0x20
SERIAL_RANGE = 0x21
SERIAL_BITMAP = 0x22
#: Ranges at most this wide are stored as their single serials (cheap, and the encoder
#: may put them in list or bitmap sections); wider ones stay ranges.
EXPAND_LIMIT = 48

_BITS_TO_FLAGS = bytes.maketrans(b"01", b"\x00\x01")
#: min(d, 255) as a C-level dict lookup (``_CAPPED.get(d, 255)``)
_CAPPED = {d: d for d in range(255)}


def bitmap_serials(offset: int, bits: int) -> Iterable[int]:
    """The serials whose bit is set in ``bits`` (bit 0 is ``offset``), in order."""
    flags = format(bits, "b")[::-1].encode("ascii").translate(_BITS_TO_FLAGS)
    return compress(range(offset, offset + len(flags)), flags)


def _merge(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Sorted, coalesced (overlapping or touching) ranges as parallel lo/hi lists."""
    los: list[int] = []
    his: list[int] = []
    for lo, hi in sorted(ranges):
        if his and lo <= his[-1] + 1:
            if hi > his[-1]:
                his[-1] = hi
        else:
            los.append(lo)
            his.append(hi)
    return los, his


class _Lookup:
    """The query structure: a hash set of singles, sorted wide ranges, sorted bitmaps."""

    __slots__ = ("bit_ends", "bit_offsets", "bit_values", "range_his", "range_los", "singles")

    def __init__(self, singles: list[int], ranges: list[tuple[int, int]],
                 bitmaps: list[tuple[int, int]]) -> None:
        self.singles = frozenset(singles)
        self.range_los, self.range_his = _merge(ranges)
        offsets: list[int] = []
        ends: list[int] = []
        values: list[int] = []
        for offset, bits in sorted(bitmaps):
            if not bits:
                continue
            end = offset + bits.bit_length() - 1
            if ends and offset <= ends[-1]:  # overlapping bitmaps (never written by OpenSSH)
                values[-1] |= bits << (offset - offsets[-1])
                ends[-1] = max(ends[-1], end)
            else:
                offsets.append(offset)
                ends.append(end)
                values.append(bits)
        self.bit_offsets, self.bit_ends, self.bit_values = offsets, ends, values

    def __contains__(self, serial: int) -> bool:
        if serial in self.singles:
            return True
        i = bisect_right(self.range_los, serial) - 1
        if i >= 0 and serial <= self.range_his[i]:
            return True
        i = bisect_right(self.bit_offsets, serial) - 1
        return i >= 0 and serial <= self.bit_ends[i] and bool(
            (self.bit_values[i] >> (serial - self.bit_offsets[i])) & 1)


class SerialSet:
    """Revoked serials of one CA. Callers check ``0 < lo <= hi <= U64_MAX`` first."""

    __slots__ = ("_bitmaps", "_diffs", "_lookup", "_normal", "_ranges", "_singles")

    def __init__(self) -> None:
        self._singles: list[int] = []
        self._ranges: list[tuple[int, int]] = []
        self._bitmaps: list[tuple[int, int]] = []
        self._lookup: _Lookup | None = None
        self._normal: tuple[list[int], list[int]] | None = None
        #: differences of neighbouring normalized() values, when _normalize had them
        self._diffs: list[int] | None = None

    def _changed(self) -> None:
        self._lookup = None
        self._normal = None
        self._diffs = None

    def add(self, lo: int, hi: int | None = None) -> None:
        if hi is None or hi == lo:
            self._singles.append(lo)
        elif hi - lo < EXPAND_LIMIT:
            self._singles.extend(range(lo, hi + 1))
        else:
            self._ranges.append((lo, hi))
        self._changed()

    def add_singles(self, serials: Iterable[int]) -> None:
        self._singles.extend(serials)
        self._changed()

    def add_bitmap(self, offset: int, bits: int) -> None:
        """Bit N of ``bits`` revokes serial ``offset + N`` (a KRL bitmap subsection)."""
        if bits:
            self._bitmaps.append((offset, bits))
            self._changed()

    def add_bitmaps(self, bitmaps: Iterable[tuple[int, int]]) -> None:
        """add_bitmap() for many ``(offset, bits)`` pairs at once."""
        self._bitmaps.extend(pair for pair in bitmaps if pair[1])
        self._changed()

    def __bool__(self) -> bool:
        return bool(self._singles or self._ranges or self._bitmaps)

    def __contains__(self, serial: int) -> bool:
        if self._lookup is None:
            self._lookup = _Lookup(self._singles, self._ranges, self._bitmaps)
        return serial in self._lookup

    def normalized(self) -> tuple[list[int], list[int]]:
        """``(vals, links)``: every serial in ascending order, except that a range wider
        than EXPAND_LIMIT appears as its two ends ``vals[k], vals[k+1]`` with ``k`` in
        the sorted list ``links``."""
        if self._normal is None:
            self._normal = self._normalize()
        return self._normal

    def _normalize(self) -> tuple[list[int], list[int]]:
        if self._bitmaps:
            singles = set(self._singles)
            for offset, bits in self._bitmaps:
                singles.update(bitmap_serials(offset, bits))
            vals = sorted(singles)
        else:
            vals = sorted(self._singles)  # nearly free when already in order
            # the differences tell whether there are duplicates, and gaps() wants them
            diffs = list(map(sub, islice(vals, 1, None), vals))
            if diffs and min(diffs) <= 0:
                vals = sorted(set(vals))
            elif not self._ranges:
                self._diffs = diffs
        if not self._ranges:
            return vals, []
        los, his = _merge(self._ranges)
        out: list[int] = []
        links: list[int] = []
        start = 0
        for lo, hi in zip(los, his, strict=True):
            i = bisect_right(vals, lo - 1, start)
            out += vals[start:i]
            links.append(len(out))
            out += (lo, hi)
            start = bisect_right(vals, hi, i)
        out += vals[start:]
        return out, links

    def runs(self) -> list[tuple[int, int]]:
        """The serials as maximal runs ``(lo, hi)`` of consecutive numbers, ascending."""
        vals, links = self.normalized()
        if not vals:
            return []
        linked = set(links)
        runs: list[tuple[int, int]] = []
        lo = prev = vals[0]
        for k in range(1, len(vals)):
            value = vals[k]
            if value != prev + 1 and k - 1 not in linked:
                runs.append((lo, prev))
                lo = value
            prev = value
        runs.append((lo, prev))
        return runs

    def gaps(self) -> bytes:
        """One byte per neighbouring pair of ``normalized()`` values: 0 inside a wide range,
        else their difference capped at 255 (the encoder's view of the set)."""
        vals, links = self.normalized()
        diffs = self._diffs if self._diffs is not None else map(sub, vals[1:], vals)
        gaps = bytearray(map(_CAPPED.get, diffs, repeat(255)))
        for k in links:
            gaps[k] = 0
        return bytes(gaps)
