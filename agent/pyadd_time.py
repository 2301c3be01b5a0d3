"""Lifetimes as ssh-add reads and prints them (OpenSSH misc.c convtime / fmt_timeframe)."""

from __future__ import annotations

from keytools.cert_validity import convtime

__all__ = ["UINT32_MAX", "convtime", "fmt_timeframe"]

UINT32_MAX = 2**32 - 1


def fmt_timeframe(seconds: int) -> str:
    """``HH:MM:SS`` under a day, ``XdHHhMMm`` under a week, else ``WWwXdHHh``."""
    week, sec = divmod(max(seconds, 0), 60)
    week, minutes = divmod(week, 60)
    week, hours = divmod(week, 24)
    week, day = divmod(week, 7)
    if week > 0:
        return f"{week:02d}w{day:01d}d{hours:02d}h"[:8]
    if day > 0:
        return f"{day:01d}d{hours:02d}h{minutes:02d}m"[:8]
    return f"{hours:02d}:{minutes:02d}:{sec:02d}"[:8]
