"""Entry points for pyssh and pysshd; placeholders until the protocol is written.

They exist so the console scripts install and fail cleanly (exit 1, no traceback).
"""

from __future__ import annotations

import sys


def _not_implemented(prog: str) -> int:
    print(f"{prog}: not implemented yet", file=sys.stderr)
    return 1


def pyssh_main(argv: list[str] | None = None) -> int:
    """ssh client replacement (not implemented yet)."""
    return _not_implemented("pyssh")


def pysshd_main(argv: list[str] | None = None) -> int:
    """sshd replacement (not implemented yet)."""
    return _not_implemented("pysshd")
