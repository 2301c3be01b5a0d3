#!/usr/bin/env python3
"""Agent signatures per second through the socket: pyagent against ssh-agent, same run.

Usage: python3 bench/agent.py [--seconds S] [--markdown]

Both agents run in the foreground on private sockets with the same keys (added by
OpenSSH's ssh-add); the same client code (pre-built SIGN_REQUEST frames, one request
in flight per connection, separate client processes) drives each. Workloads: Ed25519
and ECDSA P-256 with one client, RSA-3072 (rsa-sha2-512) with one and with eight
concurrent clients; also the wall time of `ssh-add -l` against each agent. Prints our
figure, OpenSSH's, and the ratio. A benchmark, not a test: nothing here fails a build.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, installed_env

sys.path.insert(0, str(REPO))

SIGN_REQUEST = 13
RSA_SHA2_512 = 4


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def sign_frame(key_blob: bytes, data: bytes, flags: int) -> bytes:
    body = bytes((SIGN_REQUEST,)) + _string(key_blob) + _string(data) + flags.to_bytes(4, "big")
    return len(body).to_bytes(4, "big") + body


def _recv_reply(sock: socket.socket) -> bytes:
    buf = b""
    while len(buf) < 4:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("agent closed the connection")
        buf += chunk
    need = int.from_bytes(buf[:4], "big") + 4
    while len(buf) < need:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("agent closed the connection")
        buf += chunk
    return buf[4:need]


def _client(path: str, frame: bytes, start_at: float, seconds: float,
            out: multiprocessing.Queue[int]) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    sock.sendall(frame)  # warm up (first use builds cached key objects)
    if _recv_reply(sock)[0] != 14:
        raise SystemExit("agent refused to sign")
    while time.time() < start_at:
        time.sleep(0.001)
    count = 0
    end = start_at + seconds
    while time.time() < end:
        sock.sendall(frame)
        _recv_reply(sock)
        count += 1
    out.put(count)
    sock.close()


def signatures_per_second(path: str, frame: bytes, clients: int, seconds: float) -> float:
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_client, args=(path, frame, start_at, seconds, queue))
             for _ in range(clients)]
    for p in procs:
        p.start()
    total = sum(queue.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def _wait_socket(path: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"agent exited: {proc.stderr.read() if proc.stderr else ''!r}")
        if os.path.exists(path):
            return
        time.sleep(0.02)
    raise SystemExit("agent did not start")


def start_agent(cmd: list[str], path: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([*cmd, "-D", "-a", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    _wait_socket(path, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def median_wall(cmd: list[str], env: dict[str, str], runs: int = 7) -> float:
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        subprocess.run(cmd, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    for tool in ("ssh-agent", "ssh-add", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not installed")
    from keytools.public import parse_public_line

    work = Path(tempfile.mkdtemp(prefix="agentbench."))
    keys = {"ed25519": ["-t", "ed25519"], "ecdsa": ["-t", "ecdsa", "-b", "256"],
            "rsa": ["-t", "rsa", "-b", "3072"]}
    blobs = {}
    for name, spec in keys.items():
        subprocess.run(["ssh-keygen", "-q", *spec, "-N", "", "-C", name, "-f",
                        str(work / name)], check=True)
        blobs[name] = parse_public_line((work / f"{name}.pub").read_text())[0].blob()
    data = os.urandom(150)  # about the size of a user-auth request
    agents = {
        "pyagent": [sys.executable, "-c",
                    "import sys; from agent.cli import pyagent_main; "
                    "sys.exit(pyagent_main(sys.argv[1:]))"],
        "ssh-agent": [shutil.which("ssh-agent") or "ssh-agent"],
    }
    procs = {}
    env = installed_env(work / "pycache")  # pyadd as installed: bytecode cached
    try:
        for name, cmd in agents.items():
            path = str(work / f"{name}.sock")
            procs[name] = start_agent(cmd, path)
            add_env = dict(env, SSH_AUTH_SOCK=path)
            subprocess.run(["ssh-add", "-q", *(str(work / k) for k in keys)], env=add_env,
                           check=True, capture_output=True)
        workloads = [
            ("Ed25519, 1 client", "ed25519", 0, 1),
            ("ECDSA P-256, 1 client", "ecdsa", 0, 1),
            ("RSA-3072, 1 client", "rsa", RSA_SHA2_512, 1),
            ("RSA-3072, 8 clients", "rsa", RSA_SHA2_512, 8),
        ]
        rows = []
        for label, key, flags, clients in workloads:
            frame = sign_frame(blobs[key], data, flags)
            ours = signatures_per_second(str(work / "pyagent.sock"), frame, clients,
                                         args.seconds)
            theirs = signatures_per_second(str(work / "ssh-agent.sock"), frame, clients,
                                           args.seconds)
            rows.append((f"sign/s {label}", f"{ours:.0f}", f"{theirs:.0f}",
                         f"{ours / theirs:.2f}x"))
        walls = {}
        for name in agents:
            walls[name] = median_wall(["ssh-add", "-l"],
                                      dict(env, SSH_AUTH_SOCK=str(work / f"{name}.sock")))
        rows.append(("ssh-add -l wall ms", f"{walls['pyagent'] * 1000:.1f}",
                     f"{walls['ssh-agent'] * 1000:.1f}",
                     f"{walls['ssh-agent'] / walls['pyagent']:.2f}x"))
        extra = ""
        if shutil.which("pyadd"):
            ours_env = dict(env, SSH_AUTH_SOCK=str(work / "pyagent.sock"))
            pyadd_wall = median_wall(["pyadd", "-l"], ours_env)
            extra = (f"pyadd -l {pyadd_wall * 1000:.1f} ms vs ssh-add -l "
                     f"{walls['pyagent'] * 1000:.1f} ms, both against pyagent")
    finally:
        for proc in procs.values():
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    header = ("workload", "pyagent", "ssh-agent", "ratio (higher is better for pyagent)")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        print(f"{header[0]:<32} {header[1]:>10} {header[2]:>10}  {header[3]}")
        for row in rows:
            print(f"{row[0]:<32} {row[1]:>10} {row[2]:>10}  {row[3]}")
    if extra:
        print(extra)
    print(f"({os.cpu_count()} CPUs, {args.seconds:g} s per measurement)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
