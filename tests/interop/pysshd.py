"""A pysshd subprocess for interop tests: started on 127.0.0.1 with a temporary config,
stopped by pid (``PysshdServer.stop``, called from the fixtures' finalisers)."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, run, stop_process, tool_path
from tests.interop.sshd import free_port

PYSSHD = [sys.executable, "-m", "protocol.sshd_main"]
PYKEYGEN = [sys.executable, "-m", "keytools.cli.pykeygen"]
USER = getpass.getuser()


def pysshd_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def keygen(*args: str | Path) -> None:
    done = run([tool_path("ssh-keygen"), *map(str, args)])
    assert done.returncode == 0, done.stderr


@dataclass
class PysshdServer:
    directory: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    def key(self, name: str) -> Path:
        return self.directory / name

    def authorize(self, *lines: str) -> None:
        self.authorized_keys.write_text("".join(line + "\n" for line in lines))

    def pub(self, name: str) -> str:
        return self.key(f"{name}.pub").read_text().strip()

    def ssh(self, *remote: str, identity: str = "id", certificate: str | None = None,
            options: tuple[str, ...] = (), user: str = USER,
            extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        client = self.directory / "client"
        cmd = [tool_path("ssh"), "-F", "/dev/null", "-p", str(self.port),
               "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=20",
               "-o", f"UserKnownHostsFile={client / 'known_hosts'}",
               "-o", "StrictHostKeyChecking=accept-new", "-o", "LogLevel=ERROR",
               "-i", str(self.key(identity))]
        if certificate is not None:
            cmd += ["-o", f"CertificateFile={self.key(certificate)}"]
        for option in options:
            cmd += ["-o", option]
        env = pysshd_env()
        env["HOME"] = str(client)
        return run([*cmd, *extra, f"{user}@127.0.0.1", *remote], env=env, timeout=60)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)




def start_pysshd(directory: Path, config_text: str, *, args: tuple[str, ...] = ("-D", "-e"),
                 port: int | None = None, env: dict[str, str] | None = None) -> PysshdServer:
    """Start pysshd with ``config_text`` (ListenAddress, Port and PidFile are added) and
    wait for its pid file. The caller stops it (``stop()``) in a finaliser."""
    port = free_port() if port is None else port
    (directory / "client").mkdir(mode=0o700, exist_ok=True)
    config = directory / "sshd_config"
    # StrictModes no after the caller's global lines (their own StrictModes wins) but
    # before any Match block: test files live under the world-writable /tmp, which
    # StrictModes refuses as sshd does
    # PerSourcePenalties no (as OpenSSH's regress tests): every refused login from
    # 127.0.0.1 would add up to a penalty; a later line with durations turns them on
    lines = config_text.splitlines(keepends=True)
    first_match = next((i for i, line in enumerate(lines)
                        if line.strip().lower().startswith("match")), len(lines))
    config_text = "".join(lines[:first_match]) + "\nStrictModes no\n" \
        + "".join(lines[first_match:])
    config.write_text(f"ListenAddress 127.0.0.1\nPort {port}\n"
                      f"PidFile {directory / 'pysshd.pid'}\nPerSourcePenalties no\n"
                      + config_text)
    log = directory / "pysshd.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([*PYSSHD, "-f", str(config), *args], stdout=log_file,
                                stderr=log_file, stdin=subprocess.DEVNULL,
                                env=pysshd_env() if env is None else env)
    srv = PysshdServer(directory, port, proc, log)
    deadline = time.monotonic() + 20
    while not (directory / "pysshd.pid").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            srv.stop()
            pytest.fail(f"pysshd did not start: {srv.log_text()}")
        time.sleep(0.05)
    return srv
