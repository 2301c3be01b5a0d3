"""Serial subsections of a KRL certificate section, chosen exactly as OpenSSH's krl.c.

OpenSSH walks the sorted runs of revoked serials and, for each run, prices continuing
the current subsection against starting a list, a range or a new bitmap
(``choose_next_state``: a bit-cost model of each encoding), then takes the cheapest.
Reproducing that walk gives KRLs of the same size as ssh-keygen's, byte for byte.

A Python loop over 100,000 runs would be far slower than ssh-keygen, so the walk skips
what the model makes certain. While a bitmap subsection is open, a run of at most 64
serials that follows a gap of at most 71 always continues it, whatever comes next: it
costs at most 18 bytes there if it is a single serial (a list costs 18) and at most 26
otherwise (a range costs 26, a list more), and a new bitmap would cost 72 bits more
than the gap. A regular expression over the gap bytes finds stretches of such runs;
only a stretch's first run goes through the cost model (until a bitmap is open). In the
same way, single serials with gaps of at least 56 on both sides always continue an open
list subsection (8 bytes there, against 17 for a new list and more for the others).
Each subsection is then built with bulk operations on the sorted serial list.

One deliberate difference: OpenSSH readers refuse a bitmap wider than 16384 bits (the
mpint limit), yet ssh-keygen writes wider ones for dense serials and then cannot read
its own KRL. This encoder starts a new subsection instead; that case is the only one
where its output differs from ssh-keygen's.
"""

from __future__ import annotations

import functools
import re
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from itertools import repeat
from operator import sub

from keytools.krl.serials import SERIAL_BITMAP, SERIAL_LIST, SERIAL_RANGE
from keytools.wire import Writer

__all__ = ["SERIAL_BITMAP", "SERIAL_LIST", "SERIAL_RANGE", "choose_next_state", "encode_serials"]

#: The widest bitmap an OpenSSH reader accepts (SSHBUF_MAX_BIGNUM bytes of bits).
MAX_BITMAP_BITS = 16384
_CAP = 1 << 31

# One item of the gap string: two or more single serials each followed by a wide gap
# (>= 56: they continue an open list subsection); or a stretch of short runs (<= 64
# serials) separated by small gaps (<= 71), or one long run (which may contain
# wide-range links, byte 0), then the gap byte that ends it (or the end of the string).
_ITEM = re.compile(
    rb"([\x38-\xff]{2,})"
    rb"|(?:\x01{0,63}(?![\x00\x01])(?:[\x02-\x47]\x01{0,63}(?![\x00\x01]))*"
    rb"|([\x00\x01]+))"
    rb"(?:([\x02-\xff])|\Z)"
)
#: The serial walk builds one string of bits over all serials when it is no bigger than
#: this many bytes per serial (plus a fixed allowance); else one per bitmap.
_SPAN_PER_SERIAL = 64
_SPAN_ALLOWANCE = 1 << 20
_RUN = re.compile(rb"[\x00\x01]*")


def choose_next_state(state: int, contig: int, final: bool, last_gap: int,
                      next_gap: int) -> tuple[int, bool]:
    """krl.c's choose_next_state(): the next subsection type and whether to restart."""
    contig = min(contig, _CAP)
    last_gap = min(last_gap, _CAP)
    next_gap = min(next_gap, _CAP)
    cost_list = cost_bitmap = cost_restart = 0
    cost_range = 8
    if state == SERIAL_LIST:
        cost_restart = cost_bitmap = 8 + 64
    elif state == SERIAL_BITMAP:
        cost_list = 8
        cost_restart = 8 + 64
    else:
        cost_restart = cost_bitmap = 8 + 64
        cost_list = 8
    tail = 0 if final else 8 + 64
    near = 0 if final else min(next_gap, 8 + 64)
    cost_list = (cost_list + 64 * contig + tail + 7) // 8
    cost_range = (cost_range + 2 * 64 + tail + 7) // 8
    cost_bitmap = (cost_bitmap + last_gap + contig + near + 7) // 8
    cost_restart = (cost_restart + contig + near + 7) // 8
    new_state, cost, restart = SERIAL_BITMAP, cost_bitmap, False
    if cost_range < cost:
        new_state, cost = SERIAL_RANGE, cost_range
    if cost_list < cost:
        new_state, cost = SERIAL_LIST, cost_list
    if cost_restart < cost:
        new_state, cost, restart = SERIAL_BITMAP, cost_restart, True
    return new_state, restart


#: Past this run length or gap, no choice of choose_next_state() changes any more: a
#: bitmap costs over 37 bytes and a range at most 26 (a list grows faster still); and a
#: next gap only counts up to 72. So the walk asks a cache with values capped there.
_FLAT = 300
_choose = functools.lru_cache(maxsize=1 << 16)(choose_next_state)


def _choose_without_bitmap(contig: int, final: bool, next_gap: int) -> tuple[int, bool]:
    """The cheapest choice when the open bitmap cannot grow (it would pass 16384 bits)."""
    contig = min(contig, _CAP)
    tail = 0 if final else 8 + 64
    near = 0 if final else min(next_gap, 8 + 64)
    cost_range = (8 + 2 * 64 + tail + 7) // 8
    cost_list = (8 + 64 * contig + tail + 7) // 8
    cost_restart = (8 + 64 + contig + near + 7) // 8
    new_state, cost, restart = SERIAL_RANGE, cost_range, False
    if cost_list < cost:
        new_state, cost = SERIAL_LIST, cost_list
    if cost_restart < cost:
        new_state, restart = SERIAL_BITMAP, True
    return new_state, restart


def _u64_array(values: list[int]) -> bytes:
    """Big-endian uint64s in one C-level pass (the body of a list subsection)."""
    packed = array("Q", values)
    if sys.byteorder == "little":
        packed.byteswap()
    return packed.tobytes()


class _Bitmaps:
    """The integer of bits for a bitmap subsection over vals[a]..vals[b]."""

    def __init__(self, vals: list[int], links: list[int]) -> None:
        self.vals = vals
        self.links = links
        self.bits: bytearray | bytes | None = None  # _bit_string() of all serials, if small

    def value(self, start: int, a: int, b: int) -> int:
        """Bit i set if serial ``start + i`` is revoked (``start`` is vals[a])."""
        vals = self.vals
        if self.bits is None:
            span = vals[-1] - vals[0] + 1
            if span <= _SPAN_PER_SERIAL * len(vals) + _SPAN_ALLOWANCE:
                self.bits = _bit_string(vals, self.links, 0, len(vals) - 1)
            else:
                self.bits = b""
        if self.bits:
            base = vals[0]
            chunk = bytearray(self.bits[start - base:vals[b] - base + 1])
        else:
            chunk = _bit_string(vals, self.links, a, b)
        chunk.reverse()
        return int(chunk, 2)


def _bit_string(vals: list[int], links: list[int], a: int, b: int) -> bytearray:
    """ASCII '0'/'1' for vals[a]..vals[b]: character i is '1' if vals[a] + i is in the
    set (a wide-range link k stands for everything from vals[k] to vals[k+1])."""
    start = vals[a]
    bits = bytearray(b"0") * (vals[b] - start + 1)
    deque(map(bits.__setitem__, map(sub, vals[a:b + 1], repeat(start)), repeat(0x31)),
          maxlen=0)
    for k in links[bisect_left(links, a):bisect_left(links, b)]:
        lo, hi = vals[k] - start, vals[k + 1] - start
        bits[lo:hi + 1] = b"1" * (hi - lo + 1)
    return bits


def encode_serials(vals: list[int], links: list[int], gaps: bytes, out: Writer,
                   progress: Callable[[int], None] | None = None) -> None:
    """Append the serial subsections for ``SerialSet.normalized()`` data to ``out``.

    This is krl.c's revoked_certs_generate() loop over the runs of one CA, in one
    function with its state in local variables (it runs once per run the cost model
    must see: thousands of times for 100,000 serials).
    """
    n = len(vals)
    if n == 0:
        return
    last = n - 1
    bitmaps = _Bitmaps(vals, links)
    choose, run_match = _choose, _RUN.match
    state = 0
    first = 0  # index in vals of the open subsection's first serial
    last_index = -1  # ... and of its last
    bitmap_start = 0
    prev_hi = 0  # hi of the previous run

    def emit() -> None:
        """Write the open subsection: its type, then its body as a string, whose length
        is known up front (so nothing is built twice)."""
        if state == SERIAL_BITMAP:
            bits = bitmaps.value(bitmap_start, first, last_index)  # bit 0 set: never 0
            # offset, then the bits as an mpint (a leading zero byte if the top bit is set)
            out.byte(state).uint32(8 + 4 + bits.bit_length() // 8 + 1)
            out.uint64(bitmap_start).mpint(bits)
        elif state == SERIAL_LIST:
            out.byte(state).string(_u64_array(vals[first:last_index + 1]))
        else:
            out.byte(state).uint32(16).uint64(vals[first]).uint64(vals[last_index])
        if progress is not None:
            progress(last_index - first + 1)

    def feed(a: int, b: int, final: bool) -> None:
        """Feed the run vals[a]..vals[b] through the cost model."""
        nonlocal state, first, last_index, bitmap_start, prev_hi
        lo, hi = vals[a], vals[b]
        gap = 0 if final else vals[b + 1] - hi
        contig = hi - lo + 1
        last_gap = 0 if state == 0 else lo - prev_hi
        new_state, restart = choose(state, contig if contig < _FLAT else _FLAT, final,
                                    last_gap if last_gap < _FLAT else _FLAT,
                                    gap if gap < 72 else 72)
        if new_state == SERIAL_BITMAP and not restart and state == SERIAL_BITMAP and \
                hi - bitmap_start >= MAX_BITMAP_BITS:
            new_state, restart = _choose_without_bitmap(contig, final, gap)
        if state and (restart or new_state != state or state == SERIAL_RANGE):
            emit()
            first = a
        if new_state != state or restart:
            state = new_state
            first = a
            if new_state == SERIAL_BITMAP:
                bitmap_start = lo
        last_index = b
        prev_hi = hi

    pos = 0
    while True:
        m = _ITEM.match(gaps, pos)
        if m is None:  # pragma: no cover - the pattern matches at every run start
            raise AssertionError("KRL serial walk lost its place")
        end = m.end(1)
        if end >= 0:
            # single serials vals[pos..end-1], each followed by a gap of at least 56:
            # once a list subsection is open, each costs 8 bytes there, less than
            # anything else
            feed(pos, pos, False)
            for k in range(pos + 1, end):
                if state == SERIAL_LIST:
                    last_index, prev_hi = end - 1, vals[end - 1]
                    break
                feed(k, k, False)
            pos = end
            continue
        end = m.end(2)
        stretch_end = m.start(3)
        if end >= 0:  # one long run
            feed(pos, end, end == last)
        else:
            # runs vals[pos..stop], each at most 64 long, with gaps of at most 71
            stop = stretch_end if stretch_end >= 0 else last
            start = pos
            while start <= stop:
                if state == SERIAL_BITMAP and start > pos:
                    limit = bitmap_start + MAX_BITMAP_BITS - 1
                    if vals[stop] <= limit:
                        last_index, prev_hi = stop, vals[stop]
                        break
                    # absorb up to the run that would make the bitmap too wide for OpenSSH
                    j = bisect_right(vals, limit, start, stop + 1)
                    while j > start and gaps[j - 1] == 1:
                        j -= 1
                    if j > start:
                        last_index, prev_hi = j - 1, vals[j - 1]
                        start = j
                run_end = run_match(gaps, start).end()  # type: ignore[union-attr]
                feed(start, run_end, run_end == last)
                start = run_end + 1
        if stretch_end < 0:
            break
        pos = m.end()
    emit()
