"""pyssh's messages: OpenSSH's log levels, written as ssh writes them ("\\r\\n" endings,
to stderr or the -E log file), so scripts and terminals see the same bytes."""

from __future__ import annotations

import os
import sys
from typing import TextIO

QUIET, FATAL, ERROR, INFO, VERBOSE, DEBUG1, DEBUG2, DEBUG3 = range(8)
LEVELS = {"QUIET": QUIET, "FATAL": FATAL, "ERROR": ERROR, "INFO": INFO, "VERBOSE": VERBOSE,
          "DEBUG": DEBUG1, "DEBUG1": DEBUG1, "DEBUG2": DEBUG2, "DEBUG3": DEBUG3}


class Log:
    def __init__(self, level: int = INFO, stream: TextIO | None = None) -> None:
        self.level = level
        self._stream = stream

    def open_file(self, path: str) -> None:
        """-E: append to ``path`` instead of stderr."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._stream = os.fdopen(fd, "w", encoding="utf-8", errors="replace")

    def write(self, level: int, message: str) -> None:
        if level > self.level:
            return
        prefix = f"debug{level - DEBUG1 + 1}: " if level >= DEBUG1 else ""
        stream = self._stream or sys.stderr
        stream.write(f"{prefix}{message}\r\n")
        stream.flush()

    def fatal(self, message: str) -> None:
        self.write(FATAL, message)

    def error(self, message: str) -> None:
        self.write(ERROR, message)

    def info(self, message: str) -> None:
        self.write(INFO, message)

    def verbose(self, message: str) -> None:
        self.write(VERBOSE, message)

    def debug(self, message: str, level: int = DEBUG1) -> None:
        self.write(level, message)
