"""Keys added by pyadd, used by the real ssh to log in to a real sshd.

pyadd -h/-H destination constraints, enforced by OpenSSH's ssh-agent and by pyagent
(through ssh's session-bind@openssh.com): a key constrained to the server's host key logs
in; constrained to another host, or to another user, it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.helpers import run, tool_path
from tests.interop.pyadd_support import RunningAgent, openssh_agent, py_agent, pyadd
from tests.interop.sshd import SshdServer

StartAgent = Callable[..., AbstractContextManager[RunningAgent]]


def keygen(*args: str) -> None:
    done = run([tool_path("ssh-keygen"), "-q", *args])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("start", [openssh_agent, py_agent], ids=["ssh-agent", "pyagent"])
def test_destination_constrained_login(tmp_path: Path, start: StartAgent,
                                       sshd_factory: Callable[..., SshdServer]) -> None:
    keygen("-t", "ed25519", "-N", "", "-C", "user key", "-f", str(tmp_path / "id"))
    keygen("-t", "ed25519", "-N", "", "-f", str(tmp_path / "other_host"))
    authorized = tmp_path / "authorized_keys"
    authorized.write_text((tmp_path / "id.pub").read_text())
    server = sshd_factory(f"AuthorizedKeysFile {authorized}")
    host_pub = server.host_key.with_name(server.host_key.name + ".pub").read_text()
    ssh_known = tmp_path / "ssh_known_hosts"
    ssh_known.write_text(f"[127.0.0.1]:{server.port} {host_pub}")
    constraints = tmp_path / "constraint_hosts"
    constraints.write_text(f"server {host_pub}"
                           f"elsewhere {(tmp_path / 'other_host.pub').read_text()}")
    public_only = tmp_path / "login.pub"
    public_only.write_text((tmp_path / "id.pub").read_text())

    with start(tmp_path / "agent") as agent:
        env = {"SSH_AUTH_SOCK": str(agent.socket)}

        def login() -> int:
            done = server.ssh("true", identity=public_only, known_hosts=ssh_known, env=env)
            return done.returncode

        for spec, allowed in ((["-h", "server"], True), (["-h", "elsewhere"], False),
                              (["-h", "root@server"], True), (["-h", "nobody@server"], False),
                              (["-h", "elsewhere", "-h", "server"], True), ([], True)):
            added = pyadd(["-q", "-H", str(constraints), *spec, str(tmp_path / "id")],
                          agent.env())
            assert added.returncode == 0, added.stderr
            assert (login() == 0) is allowed, (spec, server.log_text())
            assert pyadd(["-q", "-D"], agent.env()).returncode == 0
