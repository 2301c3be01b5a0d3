#!/usr/bin/env python3
"""KRL benchmark: ``pykeygen -k``/``-Q`` against ``ssh-keygen -k``/``-Q`` on 100,000 serials.

Usage: python3 bench/krl.py [--quick] [--serials N]

Workloads (the same input for both tools, in the same run):
  build-random  -k from a spec of N distinct random serials in [1, 20*N] (bitmap-heavy)
  build-sparse  -k from N serials spaced 1,000 apart (list sections)
  query         -Q of 8 certificates (some revoked) against the build-random KRL
Each line prints the best wall-clock time of each tool, ratio = pykeygen / ssh-keygen,
and in brackets the mean user+sys CPU time of a run of each tool and their ratio (the
steadier figure when other work shares the machine).
The KRL bodies are also compared (everything after the generation timestamp) and the -Q
answers must agree. Python runs as installed software does, with its bytecode cache on
(a private PYTHONPYCACHEPREFIX), whatever PYTHONDONTWRITEBYTECODE says.
This is a benchmark, not a test: nothing here fails the build.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PYKEYGEN, installed_env, timed


def _line(name: str, ours: float, theirs: float, cpu: tuple[float, float]) -> None:
    print(f"{name:<14} pykeygen {ours * 1000:8.1f} ms   ssh-keygen {theirs * 1000:8.1f} ms   "
          f"ratio {ours / theirs:5.2f}   (CPU {cpu[0] * 1000:.0f} / {cpu[1] * 1000:.0f} ms, "
          f"ratio {cpu[0] / cpu[1]:4.2f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--serials", type=int, default=100_000)
    args = parser.parse_args()
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise SystemExit("ssh-keygen is not installed")
    runs = 3 if args.quick else 9
    n = args.serials
    rng = random.Random(20260101)
    with tempfile.TemporaryDirectory(prefix="krl-bench-") as tmp:
        work = Path(tmp)
        env = installed_env(work / "pycache")
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f",
                        str(work / "ca")], check=True)
        random_serials = sorted(rng.sample(range(1, 20 * n + 1), n))
        (work / "random.spec").write_text("".join(f"serial: {s}\n" for s in random_serials))
        (work / "sparse.spec").write_text(
            "".join(f"serial: {1000 * i + 7}\n" for i in range(1, n + 1)))
        certs = []
        for i in range(8):
            key = work / f"user{i}"
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"user{i}", "-f",
                            str(key)], check=True)
            serial = random_serials[i * (n // 8)] if i % 2 else random_serials[i * (n // 8)] + 1
            subprocess.run([keygen, "-q", "-s", str(work / "ca"), "-I", f"id{i}", "-n", "u",
                            "-z", str(serial), str(key) + ".pub"], check=True,
                           capture_output=True)
            certs.append(f"user{i}-cert.pub")
        print(f"KRL benchmark, {n} serials ({sys.executable}, {keygen})")
        for name in ("random", "sparse"):
            cmd = ["-q", "-k", "-s", "ca.pub", f"{name}.spec"]
            theirs, _, _, their_cpu = timed([keygen, *cmd[:2], "-f", f"{name}-ssh.krl",
                                             *cmd[2:]], work, env, runs)
            ours, _, _, our_cpu = timed([*PYKEYGEN, *cmd[:2], "-f", f"{name}-py.krl", *cmd[2:]],
                                        work, env, runs)
            same = (work / f"{name}-ssh.krl").read_bytes()[28:] == \
                (work / f"{name}-py.krl").read_bytes()[28:]
            _line(f"build-{name}", ours, theirs, (our_cpu, their_cpu))
            verdict = "identical to" if same else "DIFFERENT from"
            print(f"{'':14} KRL size {(work / f'{name}-py.krl').stat().st_size} bytes, "
                  f"{verdict} ssh-keygen's after the timestamp")
        query = ["-Q", "-f", "random-ssh.krl", *certs]
        theirs, their_out, _, their_cpu = timed([keygen, *query], work, env, runs,
                                                ok_codes=(0, 1))
        ours, our_out, _, our_cpu = timed([*PYKEYGEN, *query], work, env, runs, ok_codes=(0, 1))
        _line("query", ours, theirs, (our_cpu, their_cpu))
        print(f"{'':14} answers {'identical' if our_out == their_out else 'DIFFERENT'}")
        python, _, _, python_cpu = timed([sys.executable, "-c", "pass"], work, env, runs)
        print(f"{'(python -c pass':<14} {python * 1000:.1f} ms, CPU {python_cpu * 1000:.0f} ms: "
              "the interpreter's own start-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
