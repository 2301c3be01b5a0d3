#!/usr/bin/env python3
"""The pyssh client against OpenSSH's ssh (and asyncssh, paramiko), same sshd, same run.

Usage: python3 bench/ssh.py [--mib N] [--runs N] [--logins N] [--libs DIR]
                           [--parts bulk,login,lib] [--markdown]

A real sshd runs on 127.0.0.1 with an ed25519 host key; every client logs in with the
same ed25519 user key. Workloads:
  bulk   `head -c N /dev/zero` read through the client (stdout piped to `wc -c`, which
         must count every byte), aes128-gcm and chacha20-poly1305: MB/s, best of --runs;
  login  the CLI's connect+auth+exec `true` wall time with the same kex, median;
  lib    connect+auth+close in-process (protocol.client.connect vs asyncssh.connect vs
         paramiko.SSHClient), median per connection, each library in its own process.
asyncssh and paramiko are read from --libs (default /tmp/benchlibs; install them there
with `pip install --target /tmp/benchlibs asyncssh paramiko`, never into the project's
dependencies); a missing one leaves its column empty. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import REPO, installed_env

sys.path.insert(0, str(REPO))

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]
CIPHERS = ("aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com")
KEXES = ("curve25519-sha256", "mlkem768x25519-sha256")
DEFAULT_LIBS = "/tmp/benchlibs"

# In-process login loops, run in a child process each (argv: host port user key count kex).
LIB_PYSSH = """
import asyncio, statistics, sys, time
from keytools.keyfile import load_private
from protocol.client import accept_any_host_key, connect
from protocol.kex import Preferences
from protocol.transport import TransportConfig
host, port, user, key, count, kex = sys.argv[1:7]
signer = load_private(key, None)[0]
config = TransportConfig(algorithms=Preferences(kex=(kex,)))
async def main():
    times = []
    for _ in range(int(count) + 1):
        t = time.perf_counter()
        conn = await connect(host, int(port), username=user, keys=[signer],
                             known_host_check=accept_any_host_key, config=config)
        await conn.close()
        times.append(time.perf_counter() - t)
    print(statistics.median(times[1:]))
asyncio.run(main())
"""
LIB_ASYNCSSH = """
import asyncio, statistics, sys, time
import asyncssh
host, port, user, key, count, kex = sys.argv[1:7]
client_key = asyncssh.read_private_key(key)
async def main():
    times = []
    for _ in range(int(count) + 1):
        t = time.perf_counter()
        conn = await asyncssh.connect(host, int(port), username=user, client_keys=[client_key],
                                      known_hosts=None, kex_algs=[kex], agent_path=None,
                                      config=None)
        conn.close()
        await conn.wait_closed()
        times.append(time.perf_counter() - t)
    print(statistics.median(times[1:]))
asyncio.run(main())
"""
LIB_PARAMIKO = """
import statistics, sys, time
import paramiko
host, port, user, key, count, kex = sys.argv[1:7]
pkey = paramiko.Ed25519Key.from_private_key_file(key)
times = []
for _ in range(int(count) + 1):
    t = time.perf_counter()
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    client.connect(host, int(port), username=user, pkey=pkey, look_for_keys=False,
                   allow_agent=False)
    client.close()
    times.append(time.perf_counter() - t)
print(statistics.median(times[1:]))
"""
BULK_ASYNCSSH = """
import asyncio, sys, time
import asyncssh
host, port, user, key, cipher, command = sys.argv[1:7]
async def main():
    async with asyncssh.connect(host, int(port), username=user, client_keys=[key],
                                known_hosts=None, encryption_algs=[cipher], agent_path=None,
                                config=None) as conn:
        proc = await conn.create_process(command, encoding=None)
        out = sys.stdout.buffer
        while chunk := await proc.stdout.read(1 << 20):
            out.write(chunk)
        await proc.wait()
    out.flush()
asyncio.run(main())
"""


def ssh_options(port: int, key: Path) -> list[str]:
    return ["-F", "/dev/null", "-p", str(port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
            "-o", "LogLevel=ERROR", "-i", str(key)]


def bulk_rate(client: list[str], size: int, env: dict[str, str], runs: int) -> float | None:
    """MB/s (10^6 bytes) of the best run, piping the client's stdout to `wc -c`."""
    best = float("inf")
    for _ in range(runs):
        line = " ".join(shlex.quote(a) for a in client) + " | wc -c"
        start = time.perf_counter()
        done = subprocess.run(["/bin/sh", "-c", line], env=env, capture_output=True,
                              stdin=subprocess.DEVNULL, check=False)
        elapsed = time.perf_counter() - start
        got = done.stdout.decode().strip()
        if not got.isdigit() or int(got) != size:
            print(f"  bulk transfer failed ({got or 'no output'}): {done.stderr.decode()[:300]}",
                  file=sys.stderr)
            return None
        best = min(best, elapsed)
    return size / best / 1e6


def median_wall(cmd: list[str], env: dict[str, str], runs: int) -> float | None:
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(cmd, env=env, capture_output=True, stdin=subprocess.DEVNULL,
                              check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            print(f"  {cmd[0]} failed: {done.stderr.decode()[:300]}", file=sys.stderr)
            return None
    return statistics.median(times[1:])


def run_script(script: str, args: list[str], env: dict[str, str]) -> str | None:
    done = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, check=False, timeout=900)
    if done.returncode != 0:
        print(f"  failed: {done.stderr.decode()[-400:]}", file=sys.stderr)
        return None
    return done.stdout.decode().strip()


def has_module(name: str, env: dict[str, str]) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {name}"], env=env,
                          capture_output=True, check=False).returncode == 0


def ssh_kexes() -> set[str]:
    done = subprocess.run(["ssh", "-Q", "kex"], capture_output=True, text=True, check=False)
    return set(done.stdout.split())


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.1f} ms" if unit == "ms" else f"{value:.0f} MB/s"


def ratio(ours: float | None, theirs: float | None) -> str:
    return "—" if ours is None or theirs is None else f"{ours / theirs:.2f}×"


def div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def verdict(value: float | None, target: float, higher: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher else value <= target
    return "met" if ok else "missed"


def print_table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 2) + "---|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        print("  ".join(f"{h:<22}" for h in header))
        for row in rows:
            print("  ".join(f"{c:<22}" for c in row))
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="bulk transfer size (MiB)")
    parser.add_argument("--runs", type=int, default=3, help="bulk runs (best is kept)")
    parser.add_argument("--logins", type=int, default=15, help="logins per median")
    parser.add_argument("--libs", default=DEFAULT_LIBS, help="where asyncssh/paramiko live")
    parser.add_argument("--parts", default="bulk,login,lib",
                        help="comma-separated subset of bulk,login,lib")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    for tool in ("ssh", "ssh-keygen", "sshd"):
        if shutil.which(tool) is None and not (tool == "sshd" and os.path.exists("/usr/sbin/sshd")):
            raise SystemExit(f"{tool} not installed")
    from tests.interop.sshd import start_sshd

    work = Path(tempfile.mkdtemp(prefix="sshbench."))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "root")
    server = start_sshd(work / "sshd", f"AuthorizedKeysFile {key}.pub\nMaxStartups 100\n")
    env = installed_env(work / "pycache")
    env["HOME"] = str(work)
    env.pop("SSH_AUTH_SOCK", None)
    lib_env = dict(env, PYTHONPATH=args.libs + os.pathsep + env["PYTHONPATH"])
    have = {name: has_module(name, lib_env) for name in ("asyncssh", "paramiko")}
    size = args.mib << 20
    command = f"head -c {size} /dev/zero"
    dest = f"{user}@127.0.0.1"
    notes: list[str] = [f"{n} not importable from {args.libs}: column skipped"
                        for n, ok in have.items() if not ok]
    try:
        opts = ssh_options(server.port, key)
        subprocess.run([*PYSSH, *opts, dest, "true"], env=env, capture_output=True, check=False)
        bulk_rows = []
        for cipher in CIPHERS if "bulk" in parts else ():
            ours = bulk_rate([*PYSSH, *opts, "-c", cipher, dest, command], size, env, args.runs)
            theirs = bulk_rate(["ssh", *opts, "-c", cipher, dest, command], size, env, args.runs)
            other = None
            if have["asyncssh"]:
                other = bulk_rate([sys.executable, "-c", BULK_ASYNCSSH, "127.0.0.1",
                                   str(server.port), user, str(key), cipher, command],
                                  size, lib_env, args.runs)
            short = cipher.split("@")[0]
            target = ""
            if short == "aes128-gcm":
                target = (f"≥ 1.0× ssh — {verdict(div(ours, theirs), 1.0, True)}; "
                          f"≥ 1.3× asyncssh — {verdict(div(ours, other), 1.3, True)}")
            bulk_rows.append((f"`cat` {args.mib} MiB, {short}", fmt(ours, "MB/s"),
                              fmt(theirs, "MB/s"), fmt(other, "MB/s"), ratio(ours, theirs),
                              ratio(ours, other), target))
        login_rows = []
        for kex in KEXES if "login" in parts else ():
            if kex not in ssh_kexes():
                notes.append(f"this ssh has no {kex}: its login row skipped")
                continue
            kex_opt = ["-o", f"KexAlgorithms={kex}"]
            ours = median_wall([*PYSSH, *opts, *kex_opt, dest, "true"], env, args.logins)
            theirs = median_wall(["ssh", *opts, *kex_opt, dest, "true"], env, args.logins)
            login_rows.append((f"CLI connect+auth+exec `true`, {kex}", fmt(ours, "ms"),
                               fmt(theirs, "ms"), ratio(ours, theirs),
                               f"≤ 1.3× — {verdict(div(ours, theirs), 1.3, False)}"))
        lib_args = ["127.0.0.1", str(server.port), user, str(key), str(args.logins),
                    "curve25519-sha256"]
        lib: dict[str, float | None] = {}
        for name, script, ok in (("pyssh", LIB_PYSSH, True),
                                 ("asyncssh", LIB_ASYNCSSH, have["asyncssh"]),
                                 ("paramiko", LIB_PARAMIKO, have["paramiko"])):
            out = run_script(script, lib_args, lib_env) if ok and "lib" in parts else None
            lib[name] = float(out) if out else None
        lib_row = ("library connect+auth, curve25519-sha256", fmt(lib["pyssh"], "ms"),
                   fmt(lib["asyncssh"], "ms"), fmt(lib["paramiko"], "ms"),
                   ratio(lib["pyssh"], lib["asyncssh"]), ratio(lib["pyssh"], lib["paramiko"]),
                   "< 1× asyncssh — " + verdict(div(lib["pyssh"], lib["asyncssh"]), 1.0, False))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if bulk_rows:
        print_table(("workload (`bench/ssh.py`)", "pyssh", "ssh", "asyncssh", "pyssh/ssh",
                     "pyssh/asyncssh", "target"), bulk_rows, args.markdown)
    if login_rows:
        print_table(("workload (`bench/ssh.py`)", "pyssh", "ssh", "ratio", "target"),
                    login_rows, args.markdown)
    if "lib" in parts:
        print_table(("workload (`bench/ssh.py`)", "pyssh", "asyncssh", "paramiko",
                     "pyssh/asyncssh", "pyssh/paramiko", "target"), [lib_row], args.markdown)
    for note in notes:
        print(f"note: {note}")
    print(f"({os.cpu_count()} CPUs; bulk: best of {args.runs}, MB/s higher is better; "
          f"logins: median of {args.logins}, lower is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
