"""Diffie-Hellman group-exchange moduli (moduli(5)): sieve candidates, screen safe primes.

The two steps of OpenSSH's moduli.c, in plain Python integers (this is number theory,
not a cryptographic primitive): ``generate_candidates`` sieves q = start + 2j so that
neither q nor p = 2q + 1 has a small factor, ``screen_candidates`` keeps the p that
pass Miller-Rabin tests for both p and q, with a generator guessed from p's residues.

A line is ``time type tests tries size generator modulus``: type 4 (Sophie Germain
candidate q) or 2 (safe prime p), tests 0x02 (sieved) | 0x04 (Miller-Rabin), size the
number of the most significant bit, generator in hex, modulus in upper-case hex.
OpenSSH sieves with every prime below 2**32; Python stops at ``SIEVE_LIMIT``, so
more candidates remain, and screening rejects them.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from keytools.errors import InvalidArgument, InvalidFormat

MODULI_TYPE_SAFE = 2
MODULI_TYPE_SOPHIE_GERMAIN = 4
MODULI_TESTS_COMPOSITE = 0x01
MODULI_TESTS_SIEVE = 0x02
MODULI_TESTS_MILLER_RABIN = 0x04
#: the smallest modulus size (its most significant bit) screening accepts
QSIZE_MINIMUM = 511
BITS_MINIMUM = QSIZE_MINIMUM + 1
BITS_MAXIMUM = 1 << 16
#: the -O memory= limits, in megabytes
MEMORY_MINIMUM = 8
MEMORY_MAXIMUM = 127
TRIAL_MINIMUM = 4
DEFAULT_TRIALS = 100
#: small primes below this sieve the candidates
SIEVE_LIMIT = 1 << 22

Log = Callable[[str], None]


def _no_log(_: str) -> None:
    pass


@dataclass(frozen=True)
class Modulus:
    """One line of a moduli file."""

    timestamp: str
    kind: int
    tests: int
    tries: int
    size: int
    generator: int
    modulus: int

    def text(self) -> str:
        return (f"{self.timestamp} {self.kind} {self.tests} {self.tries} {self.size} "
                f"{self.generator:x} {self.modulus:X}")


def timestamp(now: float | None = None) -> str:
    """qfileout()'s UTC ``YYYYMMDDHHMMSS``."""
    return time.strftime("%Y%m%d%H%M%S", time.gmtime(now))


def _ctime(now: float | None = None) -> str:
    return time.ctime(now)[:24]


def parse_moduli_line(line: str) -> Modulus | None:
    """A moduli(5) line as sshd's parse_prime() reads it; None for comments and blanks.

    Raises InvalidFormat for what sshd would skip as an error: a type other than safe
    prime, untested or composite, no trials, a size that disagrees with the modulus, or
    a generator below 2.
    """
    text = line.strip(" \t\r\n")
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    if len(fields) != 7:
        raise InvalidFormat("moduli line has the wrong number of fields")
    stamp, kind, tests, tries, size, gen, modulus = fields
    try:
        entry = Modulus(stamp, int(kind, 10), int(tests, 10), int(tries, 10), int(size, 10),
                        int(gen, 16), int(modulus, 16))
    except ValueError:
        raise InvalidFormat("moduli line has a bad number") from None
    if entry.kind != MODULI_TYPE_SAFE:
        raise InvalidFormat("moduli line is not a safe prime")
    if entry.tests & MODULI_TESTS_COMPOSITE or not entry.tests & ~MODULI_TESTS_COMPOSITE:
        raise InvalidFormat("moduli line is untested or composite")
    if entry.tries == 0 or not 0 <= entry.size <= 64 * 1024:
        raise InvalidFormat("moduli line has bad tries or size")
    if entry.modulus.bit_length() != entry.size + 1:
        raise InvalidFormat("prime has wrong size")
    if entry.generator <= 1:
        raise InvalidFormat("generator is invalid")
    return entry


# -- number theory ------------------------------------------------------------------------


def small_primes(limit: int) -> list[int]:
    """The odd primes below ``limit`` (a sieve of Eratosthenes over a bytearray)."""
    if limit < 4:
        return []
    sieve = bytearray([1]) * limit
    sieve[0] = sieve[1] = 0
    sieve[4::2] = bytes(len(range(4, limit, 2)))
    for n in range(3, int(limit ** 0.5) + 1, 2):
        if sieve[n]:
            sieve[n * n::2 * n] = bytes(len(range(n * n, limit, 2 * n)))
    return [n for n in range(3, limit, 2) if sieve[n]]


_TRIAL_PRIMES = small_primes(1000)


def is_probable_prime(n: int, rounds: int) -> bool:
    """Miller-Rabin with ``rounds`` random bases, after trial division by small primes."""
    if n < 2 or n % 2 == 0:
        return n == 2
    for p in _TRIAL_PRIMES:
        if n % p == 0:
            return n == p
    if n < 1_000_000:
        return True  # no factor below its square root
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(max(rounds, 1)):
        a = 2 + secrets.randbelow(n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def guess_generator(p: int) -> int:
    """The generator moduli.c picks from p's residues: 2, 3 or 5; 0 when none fits."""
    if p % 24 == 11:
        return 2
    if p % 12 == 5:
        return 3
    if p % 10 in (3, 7):
        return 5
    return 0


# -- step 1: candidates -------------------------------------------------------------------


@dataclass(frozen=True)
class SievePlan:
    """The size of a sieve run, worked out as gen_candidates() does."""

    power: int  # bits of q
    largebits: int  # number of q = base + 2j tried
    notes: tuple[str, ...]  # the "Increased/Decreased memory" messages

    @property
    def numbers(self) -> int:
        return self.largebits * 2


def plan_sieve(bits: int, memory: int = 0) -> SievePlan:
    """Check ``bits`` and ``memory`` (MB) with OpenSSH's limits and messages."""
    if memory and not MEMORY_MINIMUM <= memory <= MEMORY_MAXIMUM:
        raise InvalidArgument(
            f"Invalid memory amount (min {MEMORY_MINIMUM}, max {MEMORY_MAXIMUM})")
    if bits > BITS_MAXIMUM:
        raise InvalidArgument(f"Too many bits: {bits} > {BITS_MAXIMUM}")
    if bits < BITS_MINIMUM:
        raise InvalidArgument(f"Too few bits: {bits} < {BITS_MINIMUM}")
    power = bits - 1
    words = (power * power) >> 2
    notes: list[str] = []
    if words <= memory << 18:
        notes.append(f"Increased memory: {memory} MB; need {words << 2} bytes")
        words = memory << 18
    elif memory > 0:
        notes.append(f"Decreased memory: {memory} MB; want {words << 2} bytes")
        words = memory << 18
    return SievePlan(power, words << 5, tuple(notes))


def random_start(power: int) -> int:
    """BN_rand(power, top=two bits set, odd): p = 2q + 1 then has the full size."""
    return secrets.randbits(power) | (3 << (power - 2)) | 1


def sieve(
    base: int,
    count: int,
    primes: Iterable[int],
    progress: Callable[[int], None] | None = None,
) -> bytearray:
    """Mark j (0 <= j < count) where a small prime divides q = base + 2j or 2q + 1.

    The result holds 1 for a sieved-out j and 0 for a surviving candidate.
    """
    marks = bytearray(count)
    ones = memoryview(b"\x01" * count)
    for done, s in enumerate(primes, 1):
        r = base % s
        inv2 = (s + 1) >> 1
        for j in ((-r * inv2) % s, (-(2 * r + 1) * inv2 * inv2) % s):
            if j < count:
                marks[j::s] = ones[: (count - 1 - j) // s + 1]
        if progress is not None and done & 0xFFF == 0:
            progress(0x1000)
    return marks


def generate_candidates(
    bits: int,
    *,
    start: int | None = None,
    memory: int = 0,
    limit: int = SIEVE_LIMIT,
    log: Log = _no_log,
    progress: Callable[[int, int], Callable[[int], None]] | None = None,
) -> Iterator[Modulus]:
    """Sophie Germain candidates q of ``bits - 1`` bits (moduli.c's gen_candidates).

    ``log`` gets ssh-keygen's messages; ``progress(total, ...)`` may return a callback
    advanced as small primes are used.
    """
    plan = plan_sieve(bits, memory)
    for note in plan.notes:
        log(note)
    base = random_start(plan.power) if start is None else start
    base |= 1
    began = time.time()
    log(f"{_ctime(began)} Sieve next {plan.numbers} plus {plan.power}-bit")
    primes = small_primes(limit)
    advance = progress(len(primes), plan.largebits) if progress is not None else None
    marks = sieve(base, plan.largebits, primes, advance)
    stopped = time.time()
    log(f"{_ctime(stopped)} Sieved with {len(primes)} small primes in "
        f"{int(stopped - began)} seconds")
    found = 0
    j = marks.find(0)
    while j >= 0:
        found += 1
        yield Modulus(timestamp(), MODULI_TYPE_SOPHIE_GERMAIN, MODULI_TESTS_SIEVE,
                      len(primes), plan.power - 1, 0, base + 2 * j)
        j = marks.find(0, j + 1)
    log(f"{_ctime()} Found {found} candidates")


# -- step 2: screening --------------------------------------------------------------------


def _strtoul(text: str, pos: int, base: int) -> tuple[int, int]:
    """C's strtoul from ``pos``: blanks, digits; (0, pos) when there are none."""
    i = pos
    while i < len(text) and text[i] in " \t\n\v\f\r":
        i += 1
    digits = "0123456789abcdefABCDEF"[: 10 if base == 10 else 22]
    end = i
    while end < len(text) and text[end] in digits:
        end += 1
    if end == i:
        return 0, pos
    return int(text[i:end], base), end


def read_candidate(line: str) -> tuple[int, int, int, int, int, int] | None:
    """moduli.c's fragile parser: (type, tests, tries, size, generator, p); None to skip.

    The first 14 characters (the time) are skipped; a Sophie Germain line gives
    p = 2q + 1 and a size one larger.
    """
    if len(line) < 14 or line[0] in "!#":
        return None
    pos = 14
    kind, pos = _strtoul(line, pos, 10)
    tests, pos = _strtoul(line, pos, 10)
    if tests & MODULI_TESTS_COMPOSITE:
        return None
    tries, pos = _strtoul(line, pos, 10)
    size, pos = _strtoul(line, pos, 10)
    generator, pos = _strtoul(line, pos, 16)
    while pos < len(line) and line[pos] == " ":
        pos += 1
    end = pos
    while end < len(line) and line[end] in "0123456789abcdefABCDEF":
        end += 1
    if end == pos:
        raise InvalidFormat("BN_hex2bn failed")
    value = int(line[pos:end], 16)
    if kind == MODULI_TYPE_SOPHIE_GERMAIN:
        return kind, tests, tries, size + 1, 0, 2 * value + 1
    if kind in (0, 1, 2, 3, 5):
        return kind, tests, tries, size, generator, value
    return None


@dataclass
class ScreenStats:
    lines: int = 0
    possible: int = 0
    found: int = 0


def screen_candidates(
    lines: Iterable[str],
    *,
    trials: int = DEFAULT_TRIALS,
    generator: int = 0,
    start_line: int = 0,
    max_lines: int = 0,
    stats: ScreenStats | None = None,
    on_line: Callable[[int], None] | None = None,
) -> Iterator[Modulus]:
    """The safe primes among candidate lines (moduli.c's prime_test).

    Lines up to ``start_line`` are skipped and at most ``max_lines`` after it read;
    ``generator`` keeps only primes with that generator; ``on_line(n)`` is called as
    each line is reached (checkpoints, progress).
    """
    if trials < TRIAL_MINIMUM:
        raise InvalidArgument(f"Minimum primality trials is {TRIAL_MINIMUM}")
    st = stats if stats is not None else ScreenStats()
    end = start_line + max_lines if max_lines else None
    for number, line in enumerate(lines, 1):
        if end is not None and number > end:
            break
        st.lines = number
        if number <= start_line:
            continue
        if on_line is not None:
            on_line(number)
        parsed = read_candidate(line)
        if parsed is None:
            continue
        _, tests, tries, size, known, p = parsed
        q = p >> 1
        if p.bit_length() != size + 1 or size < QSIZE_MINIMUM:
            continue
        tries = tries + trials if tests & MODULI_TESTS_MILLER_RABIN else trials
        if known == 0:
            known = guess_generator(p)
        if (generator and generator != known) or known == 0:
            continue
        st.possible += 1
        if not is_probable_prime(q, 1):
            continue
        if not is_probable_prime(p, trials) or not is_probable_prime(q, trials - 1):
            continue
        st.found += 1
        yield Modulus(timestamp(), MODULI_TYPE_SAFE, tests | MODULI_TESTS_MILLER_RABIN,
                      tries, size, known, p)


def screen_summary(stats: ScreenStats, began: float) -> str:
    """The closing message of ssh-keygen -M screen."""
    return (f"{_ctime()} Found {stats.found} safe primes of {stats.possible} candidates "
            f"in {int(time.time() - began)} seconds")
