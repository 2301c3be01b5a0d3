#!/usr/bin/env python3
"""OpenSSH's ssh against pysshd and against sshd: same client, same keys, same run.

Usage: python3 bench/sshd.py [--mib N] [--runs N] [--seconds S] [--clients N] [--markdown]

Both servers run on 127.0.0.1 as the current user with the same ed25519 host key and
the same authorized key; pysshd runs with its bytecode cached, as installed. Workloads:
  bulk    `ssh -c CIPHER host 'head -c N /dev/zero' | wc -c` (every byte counted),
          aes128-gcm and chacha20-poly1305: MB/s, best of --runs;
  logins  --clients concurrent loops of `ssh host true` for --seconds: logins per second.
A benchmark, not a test: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import REPO, installed_env
from ssh import CIPHERS, bulk_rate, div, fmt, print_table, ratio, ssh_options, verdict

sys.path.insert(0, str(REPO))


def logins_per_second(cmd: list[str], env: dict[str, str], clients: int,
                      seconds: float) -> float | None:
    """Completed logins per second over ``seconds``, ``clients`` loops at once."""
    counts = [0] * clients
    failures: list[str] = []
    end = time.monotonic() + seconds

    def loop(index: int) -> None:
        while time.monotonic() < end:
            done = subprocess.run(cmd, env=env, capture_output=True,
                                  stdin=subprocess.DEVNULL, check=False)
            if done.returncode != 0:
                failures.append(done.stderr.decode(errors="replace")[:300])
                return
            counts[index] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start
    if failures:
        print(f"  login failed: {failures[0]}", file=sys.stderr)
        return None
    return sum(counts) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="bulk transfer size (MiB)")
    parser.add_argument("--runs", type=int, default=3, help="bulk runs (best is kept)")
    parser.add_argument("--seconds", type=float, default=8.0, help="login loop length")
    parser.add_argument("--clients", type=int, default=8, help="concurrent login loops")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        raise SystemExit("ssh and ssh-keygen must be installed")
    from tests.interop.pysshd import start_pysshd
    from tests.interop.sshd import start_sshd

    work = Path(tempfile.mkdtemp(prefix="sshdbench."))
    host = work / "host_ed25519"
    key = work / "id_ed25519"
    for path in (host, key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True)
    user = getpass.getuser()
    env = installed_env(work / "pycache")
    env["HOME"] = str(work)
    env.pop("SSH_AUTH_SOCK", None)
    (work / "pysshd").mkdir()
    servers = {}
    try:
        servers["sshd"] = start_sshd(
            work / "sshd", f"AuthorizedKeysFile {key}.pub\nMaxStartups 100\nLogLevel ERROR\n",
            host_key=host)
        servers["pysshd"] = start_pysshd(
            work / "pysshd", f"HostKey {host}\nAuthorizedKeysFile {key}.pub\n"
            "LogLevel ERROR\n", env=env)
        size = args.mib << 20
        command = f"head -c {size} /dev/zero"
        dest = f"{user}@127.0.0.1"
        rows = []
        for cipher in CIPHERS:
            rate = {}
            for name, server in servers.items():
                opts = ssh_options(server.port, key)
                rate[name] = bulk_rate(["ssh", *opts, "-c", cipher, dest, command], size, env,
                                       args.runs)
            value = div(rate["pysshd"], rate["sshd"])
            rows.append((f"`cat` {args.mib} MiB, {cipher.split('@')[0]}",
                         fmt(rate["pysshd"], "MB/s"), fmt(rate["sshd"], "MB/s"),
                         ratio(rate["pysshd"], rate["sshd"]),
                         f"≥ 0.9× — {verdict(value, 0.9, True)}"))
        logins = {}
        for name, server in servers.items():
            cmd = ["ssh", *ssh_options(server.port, key), dest, "true"]
            logins[name] = logins_per_second(cmd, env, args.clients, args.seconds)
        value = div(logins["pysshd"], logins["sshd"])
        rows.append((f"logins/s, {args.clients} concurrent `ssh host true`",
                     "—" if logins["pysshd"] is None else f"{logins['pysshd']:.1f}",
                     "—" if logins["sshd"] is None else f"{logins['sshd']:.1f}",
                     ratio(logins["pysshd"], logins["sshd"]),
                     f"≥ 1× — {verdict(value, 1.0, True)}"))
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_table(("workload (`bench/sshd.py`)", "pysshd", "sshd", "ratio", "target"), rows,
                args.markdown)
    version = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.split()[0]
    print(f"({os.cpu_count()} CPUs; {version} as the client; bulk: best of {args.runs}; "
          "higher is better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
