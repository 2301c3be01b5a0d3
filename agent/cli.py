"""Entry points for pyagent and pyadd; placeholders until the agent is written.

They exist so the console scripts install and fail cleanly (exit 1, no traceback).
"""

from __future__ import annotations

import sys


def _not_implemented(prog: str) -> int:
    print(f"{prog}: not implemented yet", file=sys.stderr)
    return 1


def pyagent_main(argv: list[str] | None = None) -> int:
    """ssh-agent replacement (not implemented yet)."""
    return _not_implemented("pyagent")


def pyadd_main(argv: list[str] | None = None) -> int:
    """ssh-add replacement (not implemented yet)."""
    return _not_implemented("pyadd")
