"""Running agents for tests: pyagent and OpenSSH's ssh-agent in the foreground (-D) on a
private socket, stopped by pid when the test ends (see the ``agent_factory`` fixture)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, stop_process, tool_path

PYAGENT = [sys.executable, "-m", "agent.pyagent"]


def pyagent_cmd() -> list[str]:
    return list(PYAGENT)


def base_env(home: Path | None = None, /, **extra: str) -> dict[str, str]:
    """The environment for agents and ssh-add: no user agent, askpass or display."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SSH_AUTH_SOCK", "SSH_AGENT_PID", "SSH_ASKPASS", "SSH_ASKPASS_REQUIRE",
                        "DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    if home is not None:
        env["HOME"] = str(home)
    env.update(extra)
    return env


@dataclass
class RunningAgent:
    kind: str
    path: str
    proc: subprocess.Popen[bytes]
    log: Path

    def env(self, **extra: str) -> dict[str, str]:
        """An environment pointing SSH_AUTH_SOCK at this agent."""
        return base_env(SSH_AUTH_SOCK=self.path, **extra)

    def stop(self) -> None:
        stop_process(self.proc)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for_socket(path: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"agent exited with {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(path)
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("agent socket did not appear")


def start_agent(kind: str, path: Path, args: list[str] | None = None,
                env: Mapping[str, str] | None = None) -> RunningAgent:
    """``kind`` "pyagent" or "ssh-agent", in the foreground on ``path``."""
    cmd = pyagent_cmd() if kind == "pyagent" else [tool_path("ssh-agent")]
    log = path.with_name(path.name + ".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cmd, "-D", "-a", str(path), *(args or [])],
                                stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                env=dict(env) if env is not None else base_env(),
                                cwd=REPO_ROOT)
    agent = RunningAgent(kind, str(path), proc, log)
    try:
        wait_for_socket(str(path), proc)
    except AssertionError:
        agent.stop()
        raise
    return agent


AgentFactory = Callable[..., RunningAgent]


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[AgentFactory]:
    """Start agents (``factory("pyagent")`` / ``factory("ssh-agent")``); all are stopped by
    pid when the test ends."""
    started: list[RunningAgent] = []

    def start(kind: str = "pyagent", args: list[str] | None = None,
              env: Mapping[str, str] | None = None) -> RunningAgent:
        agent = start_agent(kind, tmp_path / f"{kind}{len(started)}.sock", args, env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
