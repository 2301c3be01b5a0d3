"""How pykeygen reports: OpenSSH's fatal()/error()/logit() to stderr, results to stdout."""

from __future__ import annotations

import sys

PROGNAME = "pykeygen"


class Fatal(Exception):
    """End the command with ``message`` on stderr and exit status ``code``."""

    def __init__(self, message: str, code: int = 255) -> None:
        super().__init__(message)
        self.code = code


class Exit(Exception):
    """End the command quietly with ``code`` (output already written)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def error(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def out(text: str) -> None:
    sys.stdout.write(text)
