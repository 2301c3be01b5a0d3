#!/usr/bin/env python3
"""Side-by-side timings of pykeygen and the real ssh-keygen on this machine.

Usage: python3 bench/run.py [--quick] [--markdown]

Each workload runs both tools on the same input in the same run and prints the median
wall-clock time of each and their ratio (pykeygen / ssh-keygen). This is a benchmark,
not a test: nothing here fails the build.

pykeygen runs as an installed program would: with its bytecode cache on (a private
PYTHONPYCACHEPREFIX, whatever PYTHONDONTWRITEBYTECODE says) and buffered output
(PYTHONUNBUFFERED removed), after one warm-up run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import PYKEYGEN, installed_env


def _timed(cmd: list[str], cwd: Path, prepare: Callable[[], None] | None = None) -> float:
    if prepare is not None:
        prepare()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"benchmark command failed: {cmd}\n{done.stderr.decode()}")
    return elapsed


def median_time(
    cmd: list[str], cwd: Path, runs: int, prepare: Callable[[], None] | None = None
) -> float:
    _timed(cmd, cwd, prepare)  # warm the page cache and Python's bytecode cache
    return statistics.median(_timed(cmd, cwd, prepare) for _ in range(runs))


def make_authorized_keys(path: Path, count: int, keygen: str, workdir: Path) -> None:
    """``count`` distinct keys: mostly Ed25519, with ECDSA and RSA keys mixed in."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    enc = serialization.Encoding.OpenSSH
    fmt = serialization.PublicFormat.OpenSSH
    rsa_lines = []
    for i in range(4):
        subprocess.run([keygen, "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f",
                        str(workdir / f"rsa{i}")], check=True)
        rsa_lines.append((workdir / f"rsa{i}.pub").read_text().split()[:2])
    lines = []
    for i in range(count):
        if i % 10 == 9:
            t, b = rsa_lines[i % 4]
            lines.append(f'from="10.0.0.{i % 250}" {t} {b} rsa-{i}')
        elif i % 5 == 4:
            key = ec.generate_private_key(ec.SECP256R1()).public_key()
            lines.append(f"{key.public_bytes(enc, fmt).decode()} ecdsa-{i}")
        else:
            key25519 = ed25519.Ed25519PrivateKey.generate().public_key()
            lines.append(f"{key25519.public_bytes(enc, fmt).decode()} user{i}@host")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise SystemExit("ssh-keygen is not installed")
    runs = 3 if args.quick else 7
    cache = tempfile.mkdtemp(prefix="pykeygen-bench-pycache-")
    os.environ.clear()
    os.environ.update(installed_env(Path(cache)))
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def fresh(name: str) -> Callable[[], None]:
            def remove() -> None:
                for suffix in ("", ".pub"):
                    (work / f"{name}{suffix}").unlink(missing_ok=True)

            return remove

        generate = [
            ("generate ed25519", ["-t", "ed25519"], runs),
            ("generate ecdsa-256", ["-t", "ecdsa", "-b", "256"], runs),
            ("generate rsa-3072", ["-t", "rsa", "-b", "3072"], max(3, runs)),
        ]
        for label, flags, n in generate:
            ours = median_time([*PYKEYGEN, "-q", *flags, "-N", "", "-f", "o"], work, n, fresh("o"))
            theirs = median_time([keygen, "-q", *flags, "-N", "", "-f", "t"], work, n, fresh("t"))
            rows.append((label, ours, theirs))

        for rounds in (16, 100):
            for who in ("o", "t"):
                made = work / f"p{who}"
                fresh(f"p{who}")()
                subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(made)],
                               check=True)

            def reset(who: str) -> Callable[[], None]:
                def again() -> None:
                    # back to no passphrase, so each timed run encrypts once
                    subprocess.run([keygen, "-q", "-p", "-P", "pw", "-N", "", "-f",
                                    str(work / f"p{who}")], capture_output=True, check=False)

                return again

            ours = median_time([*PYKEYGEN, "-p", "-N", "pw", "-a", str(rounds), "-f", "po"],
                               work, runs, reset("o"))
            theirs = median_time([keygen, "-p", "-N", "pw", "-a", str(rounds), "-f", "pt"],
                                 work, runs, reset("t"))
            rows.append((f"encrypt key, -a {rounds}", ours, theirs))

        ak = work / "authorized_keys"
        make_authorized_keys(ak, 10_000, keygen, work)
        ours = median_time([*PYKEYGEN, "-l", "-f", str(ak)], work, runs)
        theirs = median_time([keygen, "-l", "-f", str(ak)], work, runs)
        rows.append(("-l over 10,000 keys", ours, theirs))

        one = work / "one.pub"
        one.write_text(ak.read_text().splitlines()[0] + "\n")
        ours = median_time([*PYKEYGEN, "-l", "-f", str(one)], work, runs * 3)
        theirs = median_time([keygen, "-l", "-f", str(one)], work, runs * 3)
        rows.append(("-l one key (start-up)", ours, theirs))
        bare = median_time([sys.executable, "-c", "pass"], work, runs * 3)

    if args.markdown:
        print("| workload | pykeygen | ssh-keygen | ratio |")
        print("|---|---:|---:|---:|")
        for label, ours, theirs in rows:
            print(f"| {label} | {ours * 1000:.1f} ms | {theirs * 1000:.1f} ms | "
                  f"{ours / theirs:.2f}x |")
        print(f"| `python -c pass` | {bare * 1000:.1f} ms | | |")
    else:
        print(f"{'workload':<26} {'pykeygen':>12} {'ssh-keygen':>12} {'ratio':>8}")
        for label, ours, theirs in rows:
            print(f"{label:<26} {ours * 1000:>9.1f} ms {theirs * 1000:>9.1f} ms "
                  f"{ours / theirs:>7.2f}x")
        print(f"{'python -c pass':<26} {bare * 1000:>9.1f} ms")
    start_up = rows[-1][1]
    print(f"\none-key -l start-up / bare python: {start_up / bare:.2f}x (target < 3x)")
    shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
