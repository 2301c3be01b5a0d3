"""OpenSSH's glob patterns for the agent: the one implementation lives in keytools.match."""

from __future__ import annotations

from keytools.match import match_pattern, match_pattern_list

__all__ = ["match_pattern", "match_pattern_list"]
