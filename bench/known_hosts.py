#!/usr/bin/env python3
"""known_hosts benchmark: ``pykeygen -F/-H/-R`` against ``ssh-keygen`` on 100,000 lines.

Usage: python3 bench/known_hosts.py [--quick] [--lines N]

The file mixes plain entries (name,address), hashed ``|1|`` entries, ``[host]:port``
entries and a few wildcard lines, over a pool of Ed25519 and ECDSA keys. Workloads (the
same input for both tools, in the same run):
  find-plain    -F of a host stored in clear, near the end of the file
  find-hashed   -F of a host stored hashed (every hashed line costs one HMAC)
  find-missing  -F of a host that is not there (exit status 1 for both)
  hash          -H of the whole file in place (a fresh copy for every run)
  remove        -R of one host in place (a fresh copy for every run)
Each line prints the best wall-clock time of each tool and ratio = pykeygen / ssh-keygen,
and in brackets the mean user+sys CPU time of a run of each tool and their ratio.
pykeygen hashes the second half of a big file in a forked child (ssh-keygen uses one
core), so on an otherwise idle machine its wall-clock time is below its CPU time.
The -F outputs must be identical; -H/-R must report the same. Python runs as installed
software does, with its bytecode cache on (a private PYTHONPYCACHEPREFIX).
This is a benchmark, not a test: nothing here fails the build.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

from common import PYKEYGEN, REPO, installed_env, timed

sys.path.insert(0, str(REPO))  # the keytools this checkout holds




def make_known_hosts(path: Path, count: int) -> dict[str, str]:
    """``count`` lines; returns the names the workloads look up."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from keytools.hostmatch import hash_host

    enc, fmt = serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    pool = []
    for i in range(64):
        if i % 4 == 3:
            pub = ec.generate_private_key(ec.SECP256R1()).public_key()
            pool.append(pub.public_bytes(enc, fmt).decode())
        else:
            pub25519 = ed25519.Ed25519PrivateKey.generate().public_key()
            pool.append(pub25519.public_bytes(enc, fmt).decode())
    rng = random.Random(4)
    lines = ["# benchmark known_hosts"]
    for i in range(count - 1):
        key = pool[rng.randrange(len(pool))]
        name = f"host{i}.example.com"
        if i % 1000 == 999:
            lines.append(f"*.zone{i}.example.net,!bad.zone{i}.example.net {key}")
        elif i % 2:
            lines.append(f"{hash_host(name)} {key}")
        elif i % 10 == 4:
            lines.append(f"[{name}]:2222 {key}")
        else:
            lines.append(f"{name},10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255} {key}")
    path.write_text("\n".join(lines) + "\n")
    last_plain = max(i for i in range(count - 1) if i % 2 == 0 and i % 10 != 4
                     and i % 1000 != 999)
    last_hashed = max(i for i in range(count - 1) if i % 2 and i % 1000 != 999)
    return {"plain": f"host{last_plain}.example.com",
            "hashed": f"host{last_hashed}.example.com",
            "missing": "nowhere.example.org"}


def _line(name: str, ours: float, theirs: float, cpu: tuple[float, float]) -> None:
    print(f"{name:<13} pykeygen {ours * 1000:8.1f} ms   ssh-keygen {theirs * 1000:8.1f} ms   "
          f"ratio {ours / theirs:5.2f}   (CPU {cpu[0] * 1000:.0f} / {cpu[1] * 1000:.0f} ms, "
          f"ratio {cpu[0] / cpu[1]:4.2f})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        raise SystemExit("ssh-keygen is not installed")
    runs = 2 if args.quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-kh-") as tmp:
        work = Path(tmp)
        env = installed_env(work / "pycache")
        source = work / "known_hosts.src"
        names = make_known_hosts(source, args.lines)
        print(f"known_hosts: {args.lines} lines, {source.stat().st_size} bytes")
        target = work / "known_hosts"
        shutil.copyfile(source, target)
        for label, key in (("find-plain", "plain"), ("find-hashed", "hashed"),
                           ("find-missing", "missing")):
            cmd = ["-F", names[key], "-f", str(target)]
            ours, out_a, _, our_cpu = timed([*PYKEYGEN, *cmd], work, env, runs, ok_codes=(0, 1))
            theirs, out_b, _, their_cpu = timed([keygen, *cmd], work, env, runs, ok_codes=(0, 1))
            if out_a != out_b:
                print(f"  warning: {label}: outputs differ")
            _line(label, ours, theirs, (our_cpu, their_cpu))

        def fresh() -> None:
            shutil.copyfile(source, target)

        for label, cmd in (("hash", ["-H", "-f", str(target)]),
                           ("remove", ["-R", names["plain"], "-f", str(target)])):
            ours, out_a, _, our_cpu = timed([*PYKEYGEN, *cmd], work, env, runs,
                                            ok_codes=(0, 1), prepare=fresh)
            theirs, out_b, _, their_cpu = timed([keygen, *cmd], work, env, runs,
                                                ok_codes=(0, 1), prepare=fresh)
            if out_a != out_b:
                print(f"  warning: {label}: reports differ")
            _line(label, ours, theirs, (our_cpu, their_cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
