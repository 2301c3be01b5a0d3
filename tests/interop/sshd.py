"""A real OpenSSH sshd on 127.0.0.1 for interop tests, and a real ssh to log in to it.

``start_sshd`` writes a private config (host key, port, pid file) in a temporary
directory and runs ``sshd -D -e`` in the foreground; the ``sshd_factory`` fixture in
tests/interop/conftest.py stops every server it started by pid when the test ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import run, stop_process, tool_path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def sshd_path() -> str:
    path = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(path):
        pytest.skip("sshd not installed")
    return path


@dataclass
class SshdServer:
    port: int
    directory: Path
    host_key: Path
    config: Path
    log: Path
    proc: subprocess.Popen[bytes]
    client_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.client_dir = self.directory / "client"
        self.client_dir.mkdir(exist_ok=True)
        self.client_dir.chmod(0o700)

    def ssh(
        self,
        *remote: str,
        identity: Path | None = None,
        certificate: Path | None = None,
        user: str = "root",
        known_hosts: Path | None = None,
        options: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real ssh against this server; host key checking is off unless
        ``known_hosts`` is given (then it is strict and the only file consulted)."""
        cmd = [tool_path("ssh"), "-F", "/dev/null", "-p", str(self.port),
               "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
               "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR"]
        if known_hosts is None:
            cmd += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        else:
            cmd += ["-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                    "-o", "GlobalKnownHostsFile=/dev/null"]
        if identity is not None:
            cmd += ["-i", str(identity)]
        else:
            cmd += ["-o", "IdentityFile=none"]
        if certificate is not None:
            cmd += ["-o", f"CertificateFile={certificate}"]
        for opt in options or []:
            cmd += ["-o", opt]
        cmd += [f"{user}@127.0.0.1", *remote]
        child_env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
        child_env["HOME"] = str(self.client_dir)
        if env:
            child_env.update(env)
        return run(cmd, env=child_env, timeout=60)

    def stop(self) -> None:
        stop_process(self.proc)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_sshd(directory: Path, config: str = "", host_key: Path | None = None,
               host_certificate: Path | None = None) -> SshdServer:
    """Start sshd with ``config`` lines appended to a minimal, test-only configuration."""
    sshd = sshd_path()
    directory.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    if host_key is None:
        host_key = directory / "ssh_host_ed25519_key"
        made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)])
        assert made.returncode == 0, made.stderr
    port = free_port()
    cfg = directory / "sshd_config"
    log = directory / "sshd.log"
    lines = [
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {host_key}",
        f"PidFile {directory / 'sshd.pid'}",
        "UsePAM no",
        "StrictModes no",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "AuthorizedKeysFile none",
        "LogLevel VERBOSE",
        "PerSourcePenalties no" if _supports("PerSourcePenalties") else "",
    ]
    if host_certificate is not None:
        lines.append(f"HostCertificate {host_certificate}")
    # sshd keeps the first value of a keyword: the caller's lines go first to override ours.
    cfg.write_text(config + "\n" + "\n".join(line for line in lines if line) + "\n")
    check = run([sshd, "-t", "-f", str(cfg)])
    assert check.returncode == 0, f"sshd -t: {check.stderr}"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(cfg)], stdout=log_file,
                                stderr=log_file, stdin=subprocess.DEVNULL)
    server = SshdServer(port, directory, host_key, cfg, log, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited: {server.log_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise AssertionError(f"sshd did not start: {server.log_text()}")


def _supports(keyword: str) -> bool:
    """Whether this sshd knows a config keyword (PerSourcePenalties is OpenSSH 9.8+)."""
    return run([sshd_path(), "-T", "-f", "/dev/null", "-o", f"{keyword}=no"]).returncode == 0
