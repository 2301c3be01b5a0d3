"""What every benchmark shares: running pykeygen as an installed program would run."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]


def installed_env(cache: Path) -> dict[str, str]:
    """This environment with pyssh's bytecode cached in ``cache`` and stdout buffered.

    A session may set PYTHONDONTWRITEBYTECODE (every start recompiles) or
    PYTHONUNBUFFERED (one write per line); neither is how an installed program runs.
    """
    drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    return env
