"""What every benchmark shares: running pykeygen as an installed program would run."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def best_time(cmd: list[str], cwd: Path, env: dict[str, str], runs: int, *,
              ok_codes: tuple[int, ...] = (0,),
              prepare: Callable[[], None] | None = None) -> tuple[float, bytes, bytes]:
    """Fastest of ``runs`` runs (after one warm-up); the last run's stdout and stderr.

    ``prepare`` runs before each run, outside the timing.
    """
    best = float("inf")
    out = err = b""
    for i in range(runs + 1):
        if prepare is not None:
            prepare()
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode not in ok_codes:
            raise SystemExit(f"benchmark command failed: {cmd}\n{done.stderr.decode()}")
        if i:
            best = min(best, elapsed)
        out, err = done.stdout, done.stderr
    return best, out, err


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(*args: Any, **kwargs: Any) -> tuple[float, bytes, bytes, float]:
    """best_time() and the mean user+sys CPU time of a run (forked helpers included):
    on a busy machine the CPU time is the steadier figure."""
    best_time(args[0], args[1], args[2], 0, **kwargs)  # bytecode compiled, caches warm
    before = children_cpu()
    best, out, err = best_time(*args, **kwargs)
    return best, out, err, (children_cpu() - before) / (args[3] + 1)
