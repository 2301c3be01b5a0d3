"""The daemon under abuse: oversized, truncated and garbage messages, stalled and many
concurrent clients. A real pyagent process serves; after each abuse it must still
answer every other client."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from agent import messages as m
from agent.client import AgentClient
from agent.daemon import handle_message, peer_uid
from agent.interface import Constraints
from agent.keyring import KeyRing
from keytools.private import PrivateKey, generate
from tests.agent.agentproc import AgentFactory, RunningAgent, agent_factory  # noqa: F401


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return generate("ed25519")


@pytest.fixture
def agent(agent_factory: AgentFactory, key: PrivateKey) -> RunningAgent:  # noqa: F811
    running = agent_factory("pyagent")
    with AgentClient(running.path) as client:
        client.add(key, "test key")
    return running


def _raw(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s


def _reply(s: socket.socket) -> bytes:
    header = b""
    while len(header) < 4:
        chunk = s.recv(4 - len(header))
        if not chunk:
            return b""
        header += chunk
    n = int.from_bytes(header, "big")
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        assert chunk
        body += chunk
    return body


def _still_serving(agent: RunningAgent, key: PrivateKey) -> None:
    assert agent.alive()
    with AgentClient(agent.path) as client:
        assert [i.comment for i in client.list()] == ["test key"]
        key.public.verify(b"ok", client.sign(key.public, b"ok"))


def test_oversized_message_closes_connection(agent: RunningAgent, key: PrivateKey) -> None:
    with _raw(agent.path) as s:
        s.sendall((m.MAX_MESSAGE + 1).to_bytes(4, "big") + b"\x0b")
        assert s.recv(10) == b""
    _still_serving(agent, key)


def test_largest_message_is_read(agent: RunningAgent, key: PrivateKey) -> None:
    with _raw(agent.path) as s:
        body = bytes((m.LOCK,)) + (m.MAX_MESSAGE - 5).to_bytes(4, "big") + bytes(
            m.MAX_MESSAGE - 5)
        s.sendall(len(body).to_bytes(4, "big") + body)
        assert _reply(s) == bytes((m.FAILURE,))  # NUL in a passphrase: refused
    _still_serving(agent, key)


def test_zero_length_message_closes(agent: RunningAgent, key: PrivateKey) -> None:
    with _raw(agent.path) as s:
        s.sendall(b"\0\0\0\0")
        assert s.recv(10) == b""
    _still_serving(agent, key)


def test_truncated_message_then_hang_up(agent: RunningAgent, key: PrivateKey) -> None:
    with _raw(agent.path) as s:
        s.sendall((100).to_bytes(4, "big") + b"\x0d\0\0")
    with _raw(agent.path) as s:
        s.sendall(b"\0\0")
    _still_serving(agent, key)


def test_stalled_client_does_not_block_others(agent: RunningAgent, key: PrivateKey) -> None:
    with _raw(agent.path) as stalled:
        stalled.sendall((1000).to_bytes(4, "big") + b"\x0d")
        _still_serving(agent, key)


@pytest.mark.parametrize("number", [0, 1, 5, 6, 11, 13, 17, 18, 20, 21, 22, 23, 25, 26, 27,
                                    28, 29, 99, 255])
def test_garbage_gets_failure(agent: RunningAgent, key: PrivateKey, number: int) -> None:
    with _raw(agent.path) as s:
        for body in (bytes((number,)) + os.urandom(37), bytes((number,)) + b"\xff" * 9):
            s.sendall(len(body).to_bytes(4, "big") + body)
            reply = _reply(s)
            if number == m.REQUEST_IDENTITIES:
                assert reply == bytes((m.FAILURE,))  # trailing bytes
            else:
                assert reply in (bytes((m.FAILURE,)),)
    _still_serving(agent, key)


def test_many_concurrent_clients(agent: RunningAgent, key: PrivateKey) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with AgentClient(agent.path) as client:
                for i in range(10):
                    data = f"{n}-{i}".encode()
                    assert len(client.list()) == 1
                    key.public.verify(data, client.sign(key.public, data))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    _still_serving(agent, key)


def test_pipelined_requests_answered_in_order(agent: RunningAgent, key: PrivateKey) -> None:
    frames = b"".join(m.frame(r.encode()) for r in (
        m.RequestIdentities(), m.SignRequest(key.public.blob(), b"p"), m.Extension("query")))
    with _raw(agent.path) as s:
        s.sendall(frames)
        assert _reply(s)[0] == m.IDENTITIES_ANSWER
        assert _reply(s)[0] == m.SIGN_RESPONSE
        assert _reply(s)[0] == m.EXTENSION_RESPONSE


def test_handle_message_never_raises() -> None:
    class Broken(KeyRing):
        def list(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("bug")

    assert handle_message(Broken(), bytes((m.REQUEST_IDENTITIES,))) == bytes((m.FAILURE,))
    assert handle_message(KeyRing(), b"") == bytes((m.FAILURE,))


def test_peer_uid_is_ours(tmp_path: Path) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert peer_uid(a) == os.getuid()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to connect as another uid")
def test_other_uid_refused(key: PrivateKey) -> None:
    import shutil
    import tempfile

    from tests.agent.agentproc import start_agent

    directory = Path(tempfile.mkdtemp(dir="/tmp"))
    directory.chmod(0o755)
    running = start_agent("pyagent", directory / "s")
    try:
        os.chmod(running.path, 0o666)  # let the other uid reach the socket at all
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            code = 3
            try:
                os.setgid(65534)
                os.setuid(65534)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                s.connect(running.path)
                try:
                    s.sendall(m.frame(m.RequestIdentities().encode()))
                    code = 0 if s.recv(10) == b"" else 1
                except ConnectionError:
                    code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        with AgentClient(running.path) as client:  # our own uid is still served
            assert client.list() == []
    finally:
        running.stop()
        shutil.rmtree(directory, ignore_errors=True)


def test_socket_mode(agent: RunningAgent) -> None:
    assert os.stat(agent.path).st_mode & 0o777 == 0o600


def test_lifetime_keys_leave_the_daemon(agent_factory: AgentFactory,  # noqa: F811
                                        key: PrivateKey) -> None:
    running = agent_factory("pyagent")
    with AgentClient(running.path) as client:
        client.add(key, "brief", Constraints(lifetime=1))
        assert len(client.list()) == 1
        import time

        time.sleep(1.5)
        assert client.list() == []


def test_pending_confirmation_blocks_only_its_client(agent_factory: AgentFactory,  # noqa: F811
                                                     key: PrivateKey, tmp_path: Path) -> None:
    import time

    from tests.agent.agentproc import base_env

    askpass = tmp_path / "slow-askpass"
    askpass.write_text("#!/bin/sh\nsleep 2\necho yes\n")
    askpass.chmod(0o755)
    running = agent_factory("pyagent", env=base_env(SSH_ASKPASS=str(askpass),
                                                    SSH_ASKPASS_REQUIRE="force"))
    other = generate("ecdsa", 256)
    with AgentClient(running.path) as client:
        client.add(key, "confirmed", Constraints(confirm=True))
        client.add(other, "free")
    result: list[bytes] = []
    slow = threading.Thread(target=lambda: result.append(
        AgentClient(running.path).sign(key.public, b"slow")))
    started = time.monotonic()
    slow.start()
    time.sleep(0.3)  # the confirmation is now pending
    with AgentClient(running.path) as client:
        assert len(client.list()) == 2
        other.public.verify(b"fast", client.sign(other.public, b"fast"))
    assert time.monotonic() - started < 1.5
    assert slow.is_alive()
    slow.join(10)
    key.public.verify(b"slow", result[0])
