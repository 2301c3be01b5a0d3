"""Entry points for pyagent and pyadd; placeholders until the agent is written.

They exist so the console scripts install and fail cleanly (exit 1, no traceback).
"""

from __future__ import annotations

import sys


def _not_implemented(prog: str) -> int:
    print(f"{prog}: not implemented yet", file=sys.stderr)
    return 1


def pyagent_main(argv: list[str] | None = None) -> int:
    """ssh-agent replacement (agent/pyagent.py, imported only when run)."""
    from agent.pyagent import pyagent_main as run

    return run(argv)


def pyadd_main(argv: list[str] | None = None) -> int:
    """ssh-add replacement (agent/pyadd.py, imported only when run)."""
    from agent.pyadd import main

    return main(argv)
