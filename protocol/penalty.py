"""Pre-authentication admission: MaxStartups' random early drop and PerSourcePenalties.

Both run in the listener, before a connection gets a process. ``should_drop`` is
sshd's should_drop_connection(): below ``start`` unauthenticated connections nothing
is dropped, from ``start`` on each new one is dropped with a probability rising
linearly from ``rate``% to 100% at ``full``. ``PenaltyTable`` is srclimit.c's penalty
list (OpenSSH 9.8): a client whose connection ended badly (crash, failed
authentication, no authentication, LoginGraceTime exceeded) has its address block
(PerSourceNetBlockSize) penalised for a while; penalties from one block add up to
``max`` and are enforced once more than ``min`` seconds are outstanding. Addresses on
PerSourcePenaltyExemptList are never penalised.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from keytools.match import match_pattern_list

#: the exit statuses of a pre-auth connection process that sshd's listener reads
EXIT_LOGIN_GRACE = 3
EXIT_CHILD_CRASH = 4
EXIT_AUTH_ATTEMPTED = 5
EXIT_CONFIG_REFUSED = 6

CRASH = "crash"
AUTHFAIL = "authfail"
NOAUTH = "noauth"
GRACE_EXCEEDED = "grace-exceeded"
INVALIDUSER = "invaliduser"
REFUSECONNECTION = "refuseconnection"

REASONS = {
    CRASH: "penalty: caused crash",
    AUTHFAIL: "penalty: failed authentication",
    NOAUTH: "penalty: connections without attempting authentication",
    GRACE_EXCEEDED: "penalty: exceeded LoginGraceTime",
    INVALIDUSER: "penalty: attempted authentication by invalid user",
    REFUSECONNECTION: "penalty: connection prohibited by RefuseConnection",
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True)
class MaxStartups:
    start: int = 10
    rate: int = 30
    full: int = 100

    def text(self) -> str:
        return f"{self.start}:{self.rate}:{self.full}"


@dataclass(frozen=True)
class PenaltyConfig:
    """PerSourcePenalties with sshd's defaults (seconds)."""

    enabled: bool = True
    crash: float = 90.0
    authfail: float = 5.0
    noauth: float = 1.0
    grace_exceeded: float = 10.0
    invaliduser: float = 5.0
    refuseconnection: float = 10.0
    max: float = 600.0
    min: float = 15.0
    max_sources4: int = 65536
    max_sources6: int = 65536
    overflow_deny_all: bool = False
    overflow6_deny_all: bool = False
    #: the names a PerSourcePenalties line has set (each keeps its first value)
    explicit: frozenset[str] = frozenset()

    def duration(self, kind: str) -> float:
        return float(getattr(self, kind.replace("-", "_")))


class SpecError(ValueError):
    """A malformed value; the caller words it with the file and line."""


def parse_max_startups(value: str) -> MaxStartups:
    """``start:rate:full`` or a single number (start = full)."""
    m = re.fullmatch(r"(-?\d+)(?::(-?\d+):(-?\d+))?", value)
    if m is None:
        raise SpecError("Invalid MaxStartups spec.")
    start = int(m.group(1))
    if m.group(2) is None:
        spec = MaxStartups(start, 100, start)
    else:
        spec = MaxStartups(start, int(m.group(2)), int(m.group(3)))
        if spec.start > spec.full or not 1 <= spec.rate <= 100:
            raise SpecError("Invalid MaxStartups spec.")
    if spec.start <= 0 or spec.full <= 0:
        raise SpecError("Invalid MaxStartups spec.")
    return spec


def convtime_double(text: str) -> float | None:
    """convtime_double(): ``1.5``, ``90s``, ``2m30s``; None if malformed."""
    if not text:
        return None
    total = 0.0
    for m in re.finditer(r"(\d+(?:\.\d*)?)([sSmMhHdDwW]?)|(.)", text):
        if m.group(3) is not None:
            return None
        total += float(m.group(1)) * _TIME_UNITS[m.group(2).lower()]
    return total


def parse_penalties(words: list[str], current: PenaltyConfig | None = None) -> PenaltyConfig:
    """One PerSourcePenalties line (``no``, ``yes``, or ``name:value`` words) over the
    earlier lines' ``current``, as servconf.c merges them: each name keeps its first
    value, yes/no count only while unset, and any duration set turns penalties on."""
    current = current or PenaltyConfig()
    if not words:
        raise SpecError("no PerSourcePenalties specified")
    changes: dict[str, object] = {}
    for i, word in enumerate(words):
        low = word.lower()
        if low in ("yes", "no"):
            if i < len(words) - 1:
                raise SpecError(f'keyword PerSourcePenalties "{word}" argument must appear '
                                "alone.")
            changes["enabled"] = low == "yes"
            continue
        name, _, rest = word.partition(":")
        if name in REASONS or name in ("max", "min"):
            seconds = convtime_double(rest)
            if seconds is None:
                raise SpecError("invalid PerSourcePenalties time value.")
            changes[name.replace("-", "_")] = seconds
        elif name in ("max-sources4", "max-sources6"):
            if not re.fullmatch(r"-?\d+", rest):
                raise SpecError(f"PerSourcePenalties value {rest} is invalid.")
            changes[name.replace("-", "_")] = int(rest)
        elif word in ("overflow:deny-all", "overflow:permissive"):
            changes["overflow_deny_all"] = rest == "deny-all"
        elif word in ("overflow6:deny-all", "overflow6:permissive"):
            changes["overflow6_deny_all"] = rest == "deny-all"
        else:
            raise SpecError(f"unsupported PerSourcePenalties keyword {word}")
        changes["enabled"] = True
    applied = {k: v for k, v in changes.items() if k not in current.explicit}
    if "enabled" in changes and len(changes) > 1 and len(applied) > ("enabled" in applied):
        applied["enabled"] = True  # a duration newly set enables penalties
    elif "enabled" in current.explicit:
        applied.pop("enabled", None)
    return replace(current, explicit=current.explicit | set(applied),
                   **applied)  # type: ignore[arg-type]


def penalties_text(config: PenaltyConfig) -> str:
    """The ``-T`` form of PerSourcePenalties (OpenSSH 10's)."""
    if not config.enabled:
        return "no"
    def t(x: float) -> str:
        return f"{x:g}"

    return (f"crash:{t(config.crash)} authfail:{t(config.authfail)} "
            f"noauth:{t(config.noauth)} grace-exceeded:{t(config.grace_exceeded)} "
            f"refuseconnection:{t(config.refuseconnection)} "
            f"max:{t(config.max)} min:{t(config.min)} "
            f"max-sources4:{config.max_sources4} max-sources6:{config.max_sources6} "
            f"overflow:{'deny-all' if config.overflow_deny_all else 'permissive'} "
            f"overflow6:{'deny-all' if config.overflow6_deny_all else 'permissive'}")


def should_drop(startups: int, spec: MaxStartups,
                rand: Callable[[int], int] = secrets.randbelow) -> bool:
    """should_drop_connection(): ``startups`` connections are already unauthenticated."""
    if startups < spec.start:
        return False
    if startups >= spec.full or spec.rate == 100:
        return True
    p = 100 - spec.rate
    p *= startups - spec.start
    p //= spec.full - spec.start
    p += spec.rate
    return rand(100) < p


def exempt(address: str, exempt_list: str | None) -> bool:
    """addr_match_list(): the address against a comma-separated list of addresses,
    CIDR blocks and wildcards (``!`` negates)."""
    if not exempt_list:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    matched = False
    for entry in exempt_list.split(","):
        entry = entry.strip()
        negate = entry.startswith("!")
        entry = entry.removeprefix("!")
        if "/" in entry:
            try:
                hit = ip in ipaddress.ip_network(entry, strict=True)
            except ValueError:
                hit = False
        else:
            hit = match_pattern_list(address, entry) == 1
        if hit and negate:
            return False
        matched = matched or hit
    return matched


@dataclass
class _Penalty:
    expiry: float
    active: bool
    reason: str


class PenaltyTable:
    """The listener's penalised address blocks (srclimit_penalise and
    srclimit_penalty_check_allow)."""

    def __init__(self, config: PenaltyConfig, exempt_list: str | None = None,
                 masks: tuple[int, int] = (32, 128),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.exempt_list = exempt_list
        self.masks = masks
        self.clock = clock
        self._table: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, _Penalty] = {}
        self.log: list[str] = []

    def block(self, address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        bits = self.masks[0] if ip.version == 4 else self.masks[1]
        return ipaddress.ip_network(f"{ip}/{bits}", strict=False)

    def _expire(self, now: float) -> None:
        for block in [b for b, p in self._table.items() if p.expiry < now]:
            del self._table[block]

    def _count(self, version: int) -> int:
        return sum(1 for b in self._table if b.version == version)

    def check(self, address: str) -> str | None:
        """None if ``address`` may connect, else the reason it is refused."""
        if not self.config.enabled or exempt(address, self.exempt_list):
            return None
        block = self.block(address)
        if block is None:
            return None
        now = self.clock()
        self._expire(now)
        limit = self.config.max_sources4 if block.version == 4 else self.config.max_sources6
        deny_all = self.config.overflow_deny_all if block.version == 4 \
            else self.config.overflow6_deny_all
        if self._count(block.version) >= limit and deny_all:
            return "too many penalised addresses"
        penalty = self._table.get(block)
        if penalty is None or not penalty.active:
            return None
        return penalty.reason

    def penalise(self, address: str, kind: str | None) -> str | None:
        """Record a penalty of ``kind`` for ``address``; returns the log line, if any."""
        if kind is None or not self.config.enabled or exempt(address, self.exempt_list):
            return None
        seconds = self.config.duration(kind)
        block = self.block(address)
        if seconds <= 0 or block is None:
            return None
        reason = REASONS[kind]
        now = self.clock()
        self._expire(now)
        family = "ipv4" if block.version == 4 else "ipv6"
        limit = self.config.max_sources4 if block.version == 4 else self.config.max_sources6
        deny_all = self.config.overflow_deny_all if block.version == 4 \
            else self.config.overflow6_deny_all
        existing = self._table.get(block)
        if existing is None:
            if self._count(block.version) >= limit and deny_all:
                return (f"srclimit_penalise: {family} penalty table full, cannot penalise "
                        f"{block} for {reason}")
            penalty = _Penalty(now + seconds, seconds > self.config.min, reason)
            self._table[block] = penalty
            while self._count(block.version) > limit:  # permissive overflow
                oldest = min((b for b in self._table if b.version == block.version),
                             key=lambda b: self._table[b].expiry)
                del self._table[oldest]
            return (f"srclimit_penalise: {family}: new {block} "
                    f"{'active' if penalty.active else 'deferred'} penalty of "
                    f"{seconds:.3f} seconds for {reason}")
        existing.expiry = min(existing.expiry + seconds, now + self.config.max)
        existing.reason = reason
        if existing.expiry - now > self.config.min and not existing.active:
            existing.active = True
            return (f"srclimit_penalise: {block}: activating {family} penalty of "
                    f"{existing.expiry - now:.3f} seconds for {reason}")
        return None


def penalty_for_status(status: int) -> str | None:
    """child_reap(): which penalty a pre-auth connection process's wait status earns."""
    import os

    if os.WIFSIGNALED(status):
        import signal

        crash = os.WTERMSIG(status) in (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE,
                                         signal.SIGILL, signal.SIGABRT, signal.SIGSYS)
        return CRASH if crash else None
    if not os.WIFEXITED(status):
        return CRASH
    code = os.WEXITSTATUS(status)
    return {0: None, EXIT_LOGIN_GRACE: GRACE_EXCEEDED, EXIT_CHILD_CRASH: CRASH,
            EXIT_AUTH_ATTEMPTED: AUTHFAIL, EXIT_CONFIG_REFUSED: REFUSECONNECTION
            }.get(code, NOAUTH)


#: the sshd_config keywords this module reads (protocol/sshd_config.py dispatches them)
LIMIT_KEYWORDS = {k.lower(): k for k in (
    "MaxStartups", "PerSourcePenalties", "PerSourcePenaltyExemptList",
    "PerSourceNetBlockSize", "PerSourceMaxStartups")}


def limit_line(values: dict[str, object], lower: str, args: list[str],
               fatal: Callable[[str], Exception]) -> None:
    """Store one line of a LIMIT_KEYWORDS keyword in the config builder's ``values``
    (first value wins; PerSourcePenalties merges per name)."""
    if lower == "persourcepenalties":
        current = values.get("per_source_penalties")
        try:
            values["per_source_penalties"] = parse_penalties(
                args, current if isinstance(current, PenaltyConfig) else None)
        except SpecError as exc:
            raise fatal(str(exc)) from None
        return
    name, value = apply_limit_keyword(lower, args, fatal)
    values.setdefault(name, value)


def apply_limit_keyword(lower: str, args: list[str], fatal: Callable[[str], Exception]
                        ) -> tuple[str, object]:
    """(ServerConfig field, value) for one line of a LIMIT_KEYWORDS keyword; raises
    ``fatal(message)`` with sshd's words for a bad value."""
    keyword = LIMIT_KEYWORDS[lower]
    if not args:
        raise fatal(f"{keyword} missing argument.")
    try:
        if lower == "maxstartups":
            return "max_startups", parse_max_startups(args[0])
        if lower == "persourcepenalties":
            return "per_source_penalties", parse_penalties(args)
    except SpecError as exc:
        raise fatal(str(exc)) from None
    if lower == "persourcepenaltyexemptlist":
        for entry in args[0].split(","):
            entry = entry.removeprefix("!")
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=True)
                except ValueError:
                    raise fatal(f"keyword {keyword} invalid address argument.") from None
        return "per_source_penalty_exempt_list", args[0]
    if lower == "persourcenetblocksize":
        m = re.fullmatch(r"(\d+)(?::(\d+))?", args[0])
        if m is None or not 0 <= int(m.group(1)) <= 32 \
                or (m.group(2) is not None and not 0 <= int(m.group(2)) <= 128):
            raise fatal(f"Invalid {keyword} spec.")
        return "per_source_net_block_size", (int(m.group(1)), int(m.group(2) or 128))
    if args[0] == "none":
        return "per_source_max_startups", None
    if not re.fullmatch(r"-?\d+", args[0]):
        raise fatal(f"{keyword} integer value invalid.")
    return "per_source_max_startups", int(args[0])


def dump_limits(config: object) -> list[str]:
    """-T lines for LIMIT_KEYWORDS (``config`` is a ServerConfig)."""
    spec: MaxStartups = getattr(config, "max_startups", MaxStartups())
    penalties: PenaltyConfig = getattr(config, "per_source_penalties", PenaltyConfig())
    v4, v6 = getattr(config, "per_source_net_block_size", (32, 128))
    per_source = getattr(config, "per_source_max_startups", None)
    exempt_list = getattr(config, "per_source_penalty_exempt_list", None)
    lines = [f"maxstartups {spec.text()}",
             f"persourcemaxstartups {'none' if per_source is None else per_source}",
             f"persourcenetblocksize {v4}:{v6}"]
    if penalties.explicit or exempt_list:
        # OpenSSH 9.8+ prints these always; 9.2's -T has no such lines, and the tests
        # compare -T with the installed sshd, so they show only when configured
        lines += [f"persourcepenalties {penalties_text(penalties)}",
                  f"persourcepenaltyexemptlist {exempt_list or 'none'}"]
    return lines
