"""pyagent's command line and process behaviour, compared with ssh-agent's where the
output is meant to be the same (paths and pids normalised)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.client import AgentClient
from tests.agent.agentproc import base_env, pyagent_cmd, wait_for_socket
from tests.helpers import REPO_ROOT, run, tool_path

_PID = re.compile(r"\b\d+\b")


def _normalise(text: str, path: str | None = None) -> str:
    if path:
        text = text.replace(path, "PATH")
    return _PID.sub("N", text)


def _env_lines(stdout: str) -> dict[str, str]:
    found = dict(re.findall(r"(SSH_AUTH_SOCK|SSH_AGENT_PID)[= ]([^;]+);", stdout))
    return found


def _wait_gone(path: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


def _exited(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (some containers' inits are slow)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def _pid_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _exited(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def short_home() -> Iterator[Path]:
    """A HOME short enough for ~/.ssh/agent/s.XXXXXXXXXX.agent.XXXXXXXXXX socket paths."""
    directory = Path(tempfile.mkdtemp(prefix="pa", dir="/tmp"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _kill_from(stdout: str) -> None:
    pid = _env_lines(stdout).get("SSH_AGENT_PID")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGTERM)


@pytest.mark.parametrize("flag", ["-s", "-c"])
def test_eval_output_and_kill_match_ssh_agent(tmp_path: Path, flag: str) -> None:
    outputs = {}
    for name, cmd in (("pyagent", pyagent_cmd()), ("ssh-agent", [tool_path("ssh-agent")])):
        sock = str(tmp_path / f"{name}.sock")
        started = run([*cmd, flag, "-a", sock], env=base_env(), cwd=REPO_ROOT)
        try:
            assert started.returncode == 0, started.stderr
            env = _env_lines(started.stdout)
            assert env["SSH_AUTH_SOCK"] == sock
            with AgentClient(sock) as client:
                assert client.list() == []
            killed = run([*cmd, flag, "-k"], env=base_env(SSH_AGENT_PID=env["SSH_AGENT_PID"]),
                         cwd=REPO_ROOT)
            assert killed.returncode == 0, killed.stderr
            assert _pid_gone(int(env["SSH_AGENT_PID"]))
            assert _wait_gone(sock)
        finally:
            _kill_from(started.stdout)
        outputs[name] = (_normalise(started.stdout, sock), started.stderr,
                         _normalise(killed.stdout), killed.stderr)
    assert outputs["pyagent"] == outputs["ssh-agent"]


def test_csh_chosen_from_shell(tmp_path: Path) -> None:
    sock = str(tmp_path / "a.sock")
    started = run([*pyagent_cmd(), "-a", sock], env=base_env(SHELL="/bin/tcsh"), cwd=REPO_ROOT)
    try:
        assert started.stdout.startswith(f"setenv SSH_AUTH_SOCK {sock};\n")
    finally:
        _kill_from(started.stdout)


def test_default_socket_under_home(short_home: Path) -> None:
    started = run([*pyagent_cmd(), "-s"], env=base_env(short_home), cwd=REPO_ROOT)
    try:
        assert started.returncode == 0, started.stderr
        path = _env_lines(started.stdout)["SSH_AUTH_SOCK"]
        directory = short_home / ".ssh" / "agent"
        assert os.path.dirname(path) == str(directory)
        assert re.fullmatch(r"s\.[A-Za-z0-9]{10}\.agent\.[A-Za-z0-9]{10}", os.path.basename(path))
        assert directory.stat().st_mode & 0o777 == 0o700
        assert os.stat(path).st_mode & 0o777 == 0o600
        with AgentClient(path) as client:
            assert client.list() == []
    finally:
        _kill_from(started.stdout)
    assert _wait_gone(path)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signal_removes_socket(tmp_path: Path, sig: signal.Signals) -> None:
    sock = str(tmp_path / "a.sock")
    started = run([*pyagent_cmd(), "-s", "-a", sock], env=base_env(), cwd=REPO_ROOT)
    pid = int(_env_lines(started.stdout)["SSH_AGENT_PID"])
    with AgentClient(sock) as client:  # the socket is there and served
        assert client.list() == []
    os.kill(pid, sig)
    assert _pid_gone(pid)
    assert not os.path.exists(sock)


def test_foreground_prints_and_serves(tmp_path: Path) -> None:
    sock = str(tmp_path / "a.sock")
    proc = subprocess.Popen([*pyagent_cmd(), "-D", "-a", sock], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=base_env(), cwd=REPO_ROOT)
    try:
        wait_for_socket(sock, proc)
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.decode() == (f"SSH_AUTH_SOCK={sock}; export SSH_AUTH_SOCK;\n"
                            f"echo Agent pid {proc.pid};\n")
    assert not os.path.exists(sock)


def test_command_mode(tmp_path: Path) -> None:
    sock = str(tmp_path / "a.sock")
    script = 'echo "$SSH_AUTH_SOCK"; echo "$SSH_AGENT_PID"; ssh-add -l; exit 3'
    result = run([*pyagent_cmd(), "-a", sock, "sh", "-c", script], env=base_env(),
                 cwd=REPO_ROOT)
    assert result.returncode == 3
    lines = result.stdout.splitlines()
    assert lines[0] == sock
    assert lines[2] == "The agent has no identities."
    # the agent notices its parent (the command) is gone and removes its socket
    assert _pid_gone(int(lines[1]), timeout=15)
    assert not os.path.exists(sock)


@pytest.mark.parametrize("args,env", [
    (["-x"], {}),
    (["-t"], {}),
    (["-t", "bogus"], {}),
    (["-E", "sha3"], {}),
    (["-O", "frobnicate"], {}),
    (["-P", "a", "-P", "b"], {}),
    (["-c", "-s"], {}),
    (["-d", "-D"], {}),
    (["-s", "true"], {}),
    (["-k"], {}),
    (["-k"], {"SSH_AGENT_PID": "x1"}),
    (["-k"], {"SSH_AGENT_PID": "1"}),
])
def test_errors_match_ssh_agent(tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
    sock = str(tmp_path / "never.sock")
    ours = run([*pyagent_cmd(), "-a", sock, *args], env=base_env(**env), cwd=REPO_ROOT)
    theirs = run([tool_path("ssh-agent"), "-a", sock, *args], env=base_env(**env))
    assert ours.returncode == theirs.returncode
    assert ours.stdout == theirs.stdout == ""

    def words(text: str) -> list[str]:
        return text.replace("ssh-agent", "pyagent").split()

    assert words(ours.stderr) == words(theirs.stderr)
    assert not os.path.exists(sock)


def test_bind_failure_matches_ssh_agent(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    ours = run([*pyagent_cmd(), "-a", str(taken)], env=base_env(), cwd=REPO_ROOT)
    theirs = run([tool_path("ssh-agent"), "-a", str(taken)], env=base_env())
    assert (ours.returncode, ours.stdout, ours.stderr) == \
        (theirs.returncode, theirs.stdout, theirs.stderr)
    assert taken.exists()


def test_non_dumpable() -> None:
    code = ("import ctypes; from agent.daemon import set_non_dumpable; "
            "assert set_non_dumpable(); libc = ctypes.CDLL(None); "
            "print(libc.prctl(3, 0, 0, 0, 0))")  # PR_GET_DUMPABLE
    result = run([sys.executable, "-c", code], env=base_env(),
                 cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
