"""The parser's state while reading sshd_config: servconf.c's rules that a keyword's
first value wins and that list keywords accumulate, and whether the current Match block
applies.

Apart from the parser so the keyword modules (sshd_auth_keywords.py) store values the
same way without importing it (no import cycle).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from protocol.sshd_options import ServerConfig

if TYPE_CHECKING:
    from protocol.sshd_match import ConnectionInfo

class _Builder:
    """Mutable state while reading: first values and accumulated lists."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.ports: list[int] = []
        self.ports_from_cmdline = False
        self.listen: list[tuple[str, int | None]] = []
        self.host_keys: list[str] = []
        self.accept_env: list[str] = []
        self.warnings: list[str] = []
        self.bad: list[str] = []
        self.in_match = False
        #: lines apply (False inside a Match block that does not match)
        self.active = True
        #: None at start-up; the connection when Match blocks are replayed
        self.connection: ConnectionInfo | None = None
        self.cmdline = False
        #: keywords that accumulate over lines (AllowUsers, ...), by field name
        self.lists: dict[str, list[object]] = {}
        self.match_lines: list[tuple[str, str, int]] = []
        self.unimplemented: dict[str, list[str]] = {}
        self.depth = 0  # Include nesting

    def build(self) -> ServerConfig:
        kwargs: dict[str, object] = dict(self.values)
        if self.ports:
            kwargs["ports"] = tuple(self.ports)
        kwargs.update({name: tuple(items) for name, items in self.lists.items()})
        warnings = list(self.warnings)
        if self.unimplemented:
            where = "; ".join(f"{k} ({', '.join(v)})" for k, v in self.unimplemented.items())
            warnings.append(f"pysshd: keywords not implemented yet, ignored: {where}")
        return ServerConfig(listen_addresses=tuple(self.listen),
                            host_keys=tuple(self.host_keys),
                            warnings=tuple(warnings), match_lines=tuple(self.match_lines),
                            **kwargs)  # type: ignore[arg-type]


def _set(b: _Builder, name: str, value: object) -> None:
    """The first value wins; lines of an inactive Match block are only checked."""
    if b.active:
        b.values.setdefault(name, value)


def _extend(b: _Builder, name: str, items: Iterable[object]) -> None:
    """Keywords whose lines accumulate (AcceptEnv, AllowUsers, ...)."""
    items = list(items)
    if b.active:
        b.lists.setdefault(name, []).extend(items)
