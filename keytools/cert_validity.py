"""Certificate validity intervals: ``ssh-keygen -V`` parsing and the ``Valid:`` text.

``parse_validity`` accepts every form ssh-keygen does: ``+52w`` (from one minute ago,
rounded down to the minute), ``from:to`` where each side is ``[+-]timespec``,
``YYYYMMDD``, ``YYYYMMDDHHMM[SS]`` (local time, read as *standard* time because OpenSSH
hands mktime() a zeroed ``tm_isdst``; a ``Z`` or ``UTC`` suffix means UTC), ``0x`` and
hex seconds, ``always`` (from) and ``forever`` (to). Dates go through a small copy of
glibc's strptime() so odd input (``20260230``, blanks inside a field) is judged as
ssh-keygen judges it. ``format_validity`` prints what ``ssh-keygen -L`` prints, in local
time, including glibc's output for times too far away for ``localtime()``.
"""

from __future__ import annotations

import calendar
import os
import time

from keytools.errors import InvalidArgument

#: valid_before of a certificate that never expires (and "forever" in -V).
FOREVER = 0xFFFF_FFFF_FFFF_FFFF
_INT_MAX = 0x7FFF_FFFF
#: OpenSSH clamps a time to SSH_TIME_T_MAX (a 64-bit time_t) before localtime().
_TIME_T_MAX = 0x7FFF_FFFF_FFFF_FFFF
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
#: glibc's isspace() in the C locale, skipped before each strptime number.
_SPACE = frozenset(b" \t\n\v\f\r")


def convtime(text: str) -> int | None:
    """OpenSSH's convtime(): ``90``, ``90s``, ``1h30m``, ``2w`` -> seconds; None if invalid.

    Each part is ASCII digits with an optional s/m/h/d/w unit (any case); the total may
    not pass INT_MAX. Signs and blanks are refused, as the strtonum() version does.
    """
    if not text:
        return None
    total, i, n = 0, 0, len(text)
    while i < n:
        j = i
        while j < n and "0" <= text[j] <= "9":
            j += 1
        if j == i:
            return None
        secs = int(text[i:j])
        if secs > _INT_MAX:
            return None
        multiplier = 1
        if j < n:
            unit = _UNITS.get(text[j].lower()) if text[j].isascii() else None
            if unit is None:
                return None
            multiplier = unit
            j += 1
        if secs > _INT_MAX // multiplier:
            return None
        secs *= multiplier
        if total > _INT_MAX - secs:
            return None
        total += secs
        i = j
    return total


# -- absolute times -----------------------------------------------------------------------

#: (first byte, end byte, smallest, largest, most digits) of each strptime field
_FIELDS = ((0, 4, 0, 9999, 4), (4, 6, 1, 12, 2), (6, 8, 1, 31, 2),
           (8, 10, 0, 23, 2), (10, 12, 0, 59, 2), (12, 14, 0, 61, 2))
_SEPARATORS = b"--T::"


def _strptime_number(buf: bytes, pos: int, low: int, high: int, digits: int) -> tuple[int, int]:
    """glibc's get_number(): blanks, then up to ``digits`` digits; (-1, pos) on failure."""
    while pos < len(buf) and buf[pos] in _SPACE:
        pos += 1
    if pos >= len(buf) or buf[pos] not in _DIGITS:
        return -1, pos
    value = 0
    while True:
        value = value * 10 + buf[pos] - 48
        pos += 1
        digits -= 1
        if not (digits > 0 and value * 10 <= high and pos < len(buf) and buf[pos] in _DIGITS):
            break
    return (value if low <= value <= high else -1), pos


def _scan(raw: bytes, fields: int) -> list[int] | None:
    """strptime() over ssh-keygen's "%.4s-%.2s-%.2sT%.2s:%.2s:%.2s" rebuild of ``raw``."""
    parts: list[bytes] = []
    for index in range(fields):
        start, end = _FIELDS[index][:2]
        if index:
            parts.append(_SEPARATORS[index - 1 : index])
        parts.append(raw[start:end])
    buf = b"".join(parts)
    values: list[int] = []
    pos = 0
    for index in range(fields):
        if index:
            if pos >= len(buf) or buf[pos] != _SEPARATORS[index - 1]:
                return None
            pos += 1
        low, high, digits = _FIELDS[index][2:]
        value, pos = _strptime_number(buf, pos, low, high, digits)
        if value < 0:
            return None
        values.append(value)
    # strptime() stops after the last field; OpenSSH wants the whole buffer consumed.
    return values if pos == len(buf) else None


def parse_absolute_time(text: str) -> int | None:
    """OpenSSH's parse_absolute_time(): YYYYMMDD[HHMM[SS]] with optional Z/UTC suffix.

    Local times are converted with mktime() and tm_isdst = 0, exactly as OpenSSH does
    (so in summer they come out an hour later than a wall clock would say). Returns
    None for anything OpenSSH refuses, including times before 1970.
    """
    raw = text.encode("utf-8", "surrogateescape")
    length = len(raw)
    is_utc = False
    if length > 1 and raw[-1:] in (b"Z", b"z"):
        is_utc, length = True, length - 1
    elif length > 3 and raw[-3:].lower() == b"utc":
        is_utc, length = True, length - 3
    fields = {8: 3, 12: 5, 14: 6}.get(length)
    if fields is None:
        return None
    values = _scan(raw, fields)
    if values is None:
        return None
    values += [0] * (6 - len(values))
    year, month, day, hour, minute, second = values
    try:
        if is_utc:
            when = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        else:
            when = int(time.mktime((year, month, day, hour, minute, second, 0, 0, 0)))
    except (OverflowError, ValueError, OSError):
        return None
    return when if when >= 0 else None


# -- -V ----------------------------------------------------------------------------------


def _relative(spec: str, now: int) -> int:
    seconds = convtime(spec[1:])
    if seconds is None:
        raise InvalidArgument(f"Invalid relative certificate time {spec}")
    if spec[0] == "-":
        if seconds > now:
            raise InvalidArgument(f"Certificate time {spec} cannot be represented")
        return now - seconds
    return now + seconds


def _hex(spec: str) -> int:
    digits = spec[2:]
    if not digits or not set(digits) <= _HEX:
        raise InvalidArgument("Invalid certificate time: not a number")
    value = int(digits, 16)
    if value > FOREVER:
        raise InvalidArgument(
            "parse_hex_u64: Invalid certificate time: Numerical result out of range")
    return value


def _endpoint(spec: str, now: int, keyword: str, keyword_value: int, side: str) -> int:
    if spec[0] in "+-":
        return _relative(spec, now)
    if spec == keyword:
        return keyword_value
    if spec.startswith("0x"):
        return _hex(spec)
    when = parse_absolute_time(spec)
    if when is None:
        raise InvalidArgument(f'Invalid {side} time "{spec}"')
    return when


def parse_validity(spec: str, now: int | None = None) -> tuple[int, int]:
    """``ssh-keygen -V spec`` -> (valid_after, valid_before), or InvalidArgument worded as
    ssh-keygen's fatal error. ``now`` defaults to the current time."""
    if now is None:
        now = int(time.time())
    if spec.startswith("+") and ":" not in spec:
        seconds = convtime(spec[1:])
        if seconds is None:
            raise InvalidArgument(f"Invalid relative certificate life {spec}")
        # Backdated a minute for badly synchronised clocks, as ssh-keygen does (C's
        # division, which truncates towards zero).
        backdated = now - 59
        minute = backdated // 60 if backdated >= 0 else -(-backdated // 60)
        return max(minute * 60, 0), now + seconds
    colon = spec.find(":")
    if colon <= 0 or colon == len(spec) - 1:
        raise InvalidArgument(f"Invalid certificate life specification {spec}")
    valid_after = _endpoint(spec[:colon], now, "always", 0, "from")
    valid_before = _endpoint(spec[colon + 1 :], now, "forever", FOREVER, "to")
    if valid_before <= valid_after:
        raise InvalidArgument("Empty certificate validity interval")
    return valid_after, valid_before


# -- printing ----------------------------------------------------------------------------


def _leaps(year: int) -> int:
    return year // 4 - year // 100 + year // 400


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _zone_file_offset() -> int:
    """The UTC offset glibc applies before localtime_r() overflows.

    With a zone file it is that of the file's last transition (taken here as standard
    time); a POSIX TZ rule string fails before any offset is applied.
    """
    tz = os.environ.get("TZ")
    if tz is not None:
        name = tz[1:] if tz.startswith(":") else tz
        base = os.environ.get("TZDIR", "/usr/share/zoneinfo")
        if not name or not os.path.isfile(name if name.startswith("/") else
                                          os.path.join(base, name)):
            return 0
    return -time.timezone


def _overflowed_time(when: int) -> str:
    """What glibc's localtime_r() leaves behind when the year does not fit an int.

    __offtime() sets the time of day and a truncated tm_year before giving up; the month
    and day stay as ssh-keygen's zeroed stack left them.
    """
    days, rem = divmod(when, 86400)
    rem += _zone_file_offset()
    days, rem = days + rem // 86400, rem % 86400
    year = 1970
    while days < 0 or days >= (366 if _is_leap(year) else 365):
        guess = year + days // 365
        days -= (guess - year) * 365 + _leaps(guess - 1) - _leaps(year - 1)
        year = guess
    tm_year = ((year - 1900 + 2**31) % 2**32) - 2**31
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    return f"{tm_year + 1900}-01-00T{hour:02d}:{minute:02d}:{second:02d}"


def format_time(when: int) -> str:
    """OpenSSH's format_absolute_time(): local ``%Y-%m-%dT%H:%M:%S``."""
    when = min(when, _TIME_T_MAX)
    try:
        tm = time.localtime(when)
    except (OverflowError, OSError, ValueError):
        return _overflowed_time(when)
    return (f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
            f"T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}")


def format_validity(valid_after: int, valid_before: int) -> str:
    """sshkey_format_cert_validity(): ``forever``, ``before X``, ``after X``, ``from X to Y``."""
    if valid_after == 0 and valid_before == FOREVER:
        return "forever"
    if valid_after == 0:
        return f"before {format_time(valid_before)}"
    if valid_before == FOREVER:
        return f"after {format_time(valid_after)}"
    return f"from {format_time(valid_after)} to {format_time(valid_before)}"
