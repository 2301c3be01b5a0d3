"""Forwarding in-process and against the real tools' parsers: -L/-R/-D/-W specs and
ssh_config keywords (compared with ``ssh -G``), sshd_config's forwarding keywords
(compared with ``sshd -T``), SOCKS negotiation, the connection layer's global-request
and deferred channel-open handling, and pyssh's forwarding code against pysshd's in one
event loop (``protocol.server.Server`` on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from keytools.private import generate
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol.auth import authenticate
from protocol.channels import Channel, ConnectionLayer
from protocol.errors import ChannelOpenFailed
from protocol.forward_client import ClientForwarding, stdio_relay
from protocol.forward_policy import (
    ForwardPolicy,
    apply_policy_keyword,
    dump_policy,
    listen_permitted,
    open_permitted,
)
from protocol.forward_spec import (
    BadForward,
    Forward,
    ForwardOptions,
    check_cli_forward,
    parse_forward,
)
from protocol.forwarding import open_direct_tcpip
from protocol.server import Server
from protocol.socks import SocksError, negotiate
from protocol.ssh_log import Log
from protocol.sshd_config import ConfigError, parse_config
from protocol.transport import Role, Transport
from tests.agent.agentproc import base_env
from tests.helpers import REPO_ROOT, run, tool_path
from tests.interop.sshd import free_port, sshd_path

PYSSH = [sys.executable, "-c",
         "from protocol.cli import pyssh_main; raise SystemExit(pyssh_main())"]
USER = pwd.getpwuid(os.getuid()).pw_name
HOST_KEY = generate("ed25519")
FORWARD_KEYS = ("clearallforwardings", "exitonforwardfailure", "gatewayports",
                "dynamicforward", "localforward", "remoteforward")
POLICY_KEYS = ("gatewayports", "allowtcpforwarding", "allowagentforwarding",
               "disableforwarding", "allowstreamlocalforwarding", "permitopen", "permitlisten")


# -- specs and ssh -G -------------------------------------------------------------------


def test_parse_forward_forms() -> None:
    assert parse_forward("8080:h:80", dynamic=False, remote=False) == \
        Forward(listen_port=8080, connect_host="h", connect_port=80)
    assert parse_forward("[::1]:8080:[fe80::1]:80", dynamic=False, remote=False) == \
        Forward(listen_host="::1", listen_port=8080, connect_host="fe80::1", connect_port=80)
    assert parse_forward("/tmp/l.sock:/tmp/r.sock", dynamic=False, remote=False) == \
        Forward(listen_path="/tmp/l.sock", listen_port=-2, connect_path="/tmp/r.sock",
                connect_port=-2)
    assert parse_forward("*:1080", dynamic=True, remote=False).listen_host == "*"
    assert parse_forward("0:h:1", dynamic=False, remote=True).listen_port == 0
    for bad, dynamic, remote in (("0:h:1", False, False), ("1:h", False, False),
                                 ("a:b:c", True, False), ("70000:h:1", False, False),
                                 ("1:h:2:3:4", False, False)):
        with pytest.raises(BadForward):
            parse_forward(bad, dynamic=dynamic, remote=remote)
    with pytest.raises(BadForward, match="Bad dynamic forwarding specification 'x:y:z'"):
        check_cli_forward("-D", "x:y:z")


@pytest.mark.parametrize("args", [
    ["-L", "1234:host:22", "-L", "[::1]:99:[fe80::2]:80", "-L", "1234:host:22"],
    ["-R", "0:h:2", "-R", "8080", "-R", "*:90:h:3", "-D", "127.0.0.1:1080", "-D", "99"],
    ["-L", "/tmp/a.sock:/tmp/b.sock", "-R", "/tmp/c.sock:h:4", "-oGatewayPorts=yes"],
    ["-W", "h:22", "-L", "1:h:2"],
    ["-oClearAllForwardings=yes", "-L", "1:h:2", "-oExitOnForwardFailure=yes"],
    ["-oLocalForward=5 h:6", "-oRemoteForward=7", "-oDynamicForward=[::1]:8"],
])
def test_dump_matches_ssh(args: list[str], tmp_path: Path) -> None:
    env = base_env(tmp_path)
    real = run([tool_path("ssh"), "-F", "/dev/null", "-G", *args, "target"], env=env)
    ours = run([*PYSSH, "-F", "/dev/null", "-G", *args, "target"], env=env, cwd=REPO_ROOT)
    assert real.returncode == ours.returncode == 0, ours.stderr

    def pick(out: str) -> list[str]:
        return [line for line in out.splitlines() if line.split(" ", 1)[0] in FORWARD_KEYS]

    assert pick(ours.stdout) == pick(real.stdout)


@pytest.mark.parametrize("args", [["-L", "1234"], ["-R", "a:b"], ["-D", "1:2:3"],
                                  ["-W", "h"], ["-W", "h:1", "-W", "h:2"]])
def test_bad_flags_match_ssh(args: list[str], tmp_path: Path) -> None:
    env = base_env(tmp_path)
    real = run([tool_path("ssh"), "-F", "/dev/null", "-G", *args, "target"], env=env)
    ours = run([*PYSSH, "-F", "/dev/null", "-G", *args, "target"], env=env, cwd=REPO_ROOT)
    assert ours.returncode == real.returncode == 255
    assert ours.stderr.strip() == real.stderr.strip()


@pytest.mark.parametrize("line", ["LocalForward 1234", "LocalForward x y",
                                  "DynamicForward 1:h:2", "GatewayPorts maybe"])
def test_bad_config_lines_match_ssh(line: str, tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    config.write_text(line + "\n")
    env = base_env(tmp_path)
    real = run([tool_path("ssh"), "-F", str(config), "-G", "target"], env=env)
    ours = run([*PYSSH, "-F", str(config), "-G", "target"], env=env, cwd=REPO_ROOT)
    assert ours.returncode == real.returncode == 255
    assert ours.stderr.splitlines()[0] == real.stderr.splitlines()[0]


# -- sshd_config keywords against sshd -T -------------------------------------------------


@pytest.mark.parametrize("text", [
    "",
    "AllowTcpForwarding all\nGatewayPorts clientspecified\nPermitOpen h:1 [::1]:22 *:*\n"
    "PermitListen 8080 localhost:*\nAllowStreamLocalForwarding local\n",
    "AllowTcpForwarding remote\nAllowAgentForwarding no\nDisableForwarding yes\n"
    "PermitOpen none\nPermitListen none\nGatewayPorts yes\nPermitOpen any\n",
])
def test_policy_dump_matches_sshd(text: str, tmp_path: Path) -> None:
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                str(tmp_path / "host")])
    assert made.returncode == 0
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\n{text}")
    theirs = run([sshd_path(), "-T", "-f", str(config)])
    assert theirs.returncode == 0, theirs.stderr
    wanted = sorted(line for line in theirs.stdout.splitlines()
                    if line.split(" ", 1)[0] in POLICY_KEYS)
    assert sorted(dump_policy(_policy(text))) == wanted


def _policy(text: str) -> ForwardPolicy:
    config = parse_config(text, "cfg")
    return ForwardPolicy(**{name: getattr(config, name)
                            for name in ForwardPolicy.__dataclass_fields__})


@pytest.mark.parametrize("line", ["AllowTcpForwarding bogus", "PermitOpen foo",
                                  "PermitOpen any h:1", "PermitListen x:y",
                                  "GatewayPorts maybe"])
def test_policy_errors_match_sshd(line: str, tmp_path: Path) -> None:
    made = run([tool_path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f",
                str(tmp_path / "host")])
    assert made.returncode == 0
    config = tmp_path / "sshd_config"
    config.write_text(f"HostKey {tmp_path / 'host'}\n{line}\n")
    theirs = run([sshd_path(), "-t", "-f", str(config)])
    assert theirs.returncode != 0
    with pytest.raises(ConfigError) as info:
        parse_config(config.read_text(), str(config))
    # (sshd counts "extra arguments" as a bad option and adds "terminating, 1 bad
    # configuration options"; the first line is the same)
    assert info.value.message == theirs.stderr.splitlines()[0]


def test_permit_matching() -> None:
    def fatal(message: str) -> ConfigError:
        return ConfigError(message)

    policy = ForwardPolicy()
    assert open_permitted(policy, (), "anything", 1)
    assert open_permitted(policy, ("h:22",), "h", 22)
    assert not open_permitted(policy, ("h:22",), "h", 23)
    assert open_permitted(policy, ("h:*",), "h", 23)
    assert not open_permitted(policy, ("h:*",), "H", 23)  # exact, as open_match()
    name, value = apply_policy_keyword("permitopen", ["x:1"], fatal)
    limited = replace(policy, **{name: value})  # type: ignore[arg-type]
    assert not open_permitted(limited, (), "h", 22)
    assert not open_permitted(limited, ("x:1",), "y", 1)
    assert open_permitted(limited, ("x:1",), "x", 1)
    assert not open_permitted(replace(policy, permit_open=()), (), "x", 1)
    assert listen_permitted(policy, ("8080",), "localhost", 8080)
    assert not listen_permitted(policy, ("8080",), "localhost", 8081)
    assert listen_permitted(policy, ("local*:*",), "LOCALHOST", 0)
    assert not listen_permitted(replace(policy, permit_listen=("*:1",)), (), "h", 2)


# -- SOCKS ------------------------------------------------------------------------------


class _Sink:
    """Enough of a StreamWriter for negotiate()."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None


def _negotiate(data: bytes) -> tuple[object, bytes]:
    async def main() -> tuple[object, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        sink = _Sink()
        try:
            request: object = await negotiate(reader, sink)  # type: ignore[arg-type]
        except SocksError as exc:
            request = exc
        return request, sink.data

    return asyncio.run(main())


def test_socks_requests() -> None:
    req, out = _negotiate(b"\x05\x02\x02\x00\x05\x01\x00\x03\x07example\x00\x50")
    assert (getattr(req, "host", None), getattr(req, "port", None), out) == \
        ("example", 80, b"\x05\x00")
    req, _ = _negotiate(b"\x05\x01\x00\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x16")
    assert getattr(req, "host", None) == "::1"
    req, _ = _negotiate(b"\x04\x01\x00\x16\x00\x00\x00\x01user\x00name.example\x00")
    assert (getattr(req, "host", None), getattr(req, "port", None)) == ("name.example", 22)
    req, _ = _negotiate(b"\x04\x01\x00\x16\x0a\x00\x00\x02\x00")
    assert getattr(req, "host", None) == "10.0.0.2"
    for bad in (b"\x06", b"\x05\x01\x02", b"\x05\x01\x00\x05\x02\x00\x01" + bytes(6),
                b"\x04\x02\x00\x16\x00\x00\x00\x01\x00", b"\x04\x01\x00\x16\x01\x02\x03\x04"
                + b"u" * 2000, b"\x05\x01\x00\x05\x01\x00\x09"):
        result, _ = _negotiate(bad)
        assert isinstance(result, SocksError), bad


# -- the connection layer ---------------------------------------------------------------


async def _pair() -> tuple[Transport, Transport, asyncio.Server]:
    from tests.protocol.loopback import loopback

    lb, client_error, server_error = await loopback([HOST_KEY])
    assert lb is not None and client_error is None and server_error is None
    lb.client.authenticated = lb.server.authenticated = True
    assert lb.listener is not None
    return lb.client, lb.server, lb.listener


def test_global_requests_answered_in_order_and_deferred_opens() -> None:
    async def main() -> None:
        client, server, listener = await _pair()
        ours, theirs = ConnectionLayer(client), ConnectionLayer(server)

        async def slow(r: Reader) -> bytes | None:
            await asyncio.sleep(0.1)
            return b"slow" + r.rest()

        theirs.global_handlers["slow"] = slow
        theirs.global_handlers["fast"] = lambda r: b""
        theirs.global_handlers["no"] = lambda r: None
        answers = await asyncio.gather(ours.global_request("slow", b"!"),
                                       ours.global_request("fast"),
                                       ours.global_request("no"),
                                       ours.global_request("unknown"))
        assert list(answers) == [b"slow!", b"", None, None]
        assert await ours.global_request("fast", want_reply=False) is None

        async def later(r: Reader) -> Channel | None:
            await asyncio.sleep(0.05)
            if r.text() == "refuse":
                raise ChannelOpenFailed(2, "Connection refused")
            return Channel(theirs, theirs.allocate(), "x")

        theirs.open_handlers["x"] = later
        opened = await ours.open_channel(Channel(ours, ours.allocate(), "x"),
                                         Writer().string("fine").getvalue())
        assert opened.remote_max_packet > 0
        with pytest.raises(ChannelOpenFailed) as info:
            await ours.open_channel(Channel(ours, ours.allocate(), "x"),
                                    Writer().string("refuse").getvalue())
        assert info.value.message == "open failed: connect failed: Connection refused"
        client.disconnect()
        server.disconnect()
        listener.close()

    asyncio.run(asyncio.wait_for(main(), 30))


# -- pyssh's forwarding against pysshd's, in-process --------------------------------------


async def _echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _roundtrip(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    writer.write_eof()
    got = await reader.read()
    writer.close()
    return got


def _with_server(tmp_path: Path, options: str, config_lines: str,
                 client: Callable[[ConnectionLayer, int], Awaitable[None]]) -> None:
    key = generate("ed25519")
    ak = tmp_path / "authorized_keys"
    ak.write_text(f"{options} {key.public.openssh()}\n".lstrip())
    port = free_port()
    config = parse_config(f"ListenAddress 127.0.0.1:{port}\nAuthorizedKeysFile {ak}\n"
                          f"StrictModes no\n{config_lines}", "cfg")

    async def main() -> None:
        server = Server(config, [HOST_KEY])
        await server.start()
        echo, echo_port = await _echo_server()
        try:
            async def accept(k: PublicKey) -> None:
                assert k.blob() == HOST_KEY.public.blob()

            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            t = Transport(reader, writer, Role.CLIENT, host_key_check=accept)
            await t.handshake()
            await authenticate(t, USER, keys=[key])
            await client(ConnectionLayer(t), echo_port)
            await t.close()
        finally:
            echo.close()
            await server.close()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_local_remote_dynamic_in_process(tmp_path: Path) -> None:
    async def client(layer: ConnectionLayer, echo_port: int) -> None:
        lport, dport = free_port(), free_port()
        opts = ForwardOptions(
            local=(Forward(listen_host="127.0.0.1", listen_port=lport,
                           connect_host="127.0.0.1", connect_port=echo_port),
                   Forward(listen_host="127.0.0.1", listen_port=dport, connect_host="socks")),
            remote=(Forward(listen_port=0, connect_host="127.0.0.1",
                            connect_port=echo_port),),
            exit_on_forward_failure=True)
        forwarding = ClientForwarding(layer, opts, Log(level=0))
        await forwarding.start(None, False)
        assert await _roundtrip(lport, b"local") == b"local"
        reader, writer = await asyncio.open_connection("127.0.0.1", dport)
        writer.write(b"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01"
                     + echo_port.to_bytes(2, "big") + b"socks")
        writer.write_eof()
        assert await reader.read() == b"\x05\x00" + b"\x05\x00\x00\x01" + bytes(6) + b"socks"
        writer.close()
        (_forward, allocated), = forwarding.remote
        assert allocated > 0
        data = os.urandom(500_000)
        assert await _roundtrip(allocated, data) == data
        cancel = Writer().string("localhost").uint32(allocated).getvalue()
        assert await layer.global_request("cancel-tcpip-forward", cancel) == b""
        with pytest.raises(OSError):
            await _roundtrip(allocated, b"gone")
        channel = await open_direct_tcpip(layer, "127.0.0.1", echo_port)
        await channel.write(b"direct")
        channel.send_eof()
        assert await channel.read_all() == b"direct"

    _with_server(tmp_path, "", "", client)


def test_restrictions_in_process(tmp_path: Path) -> None:
    async def limited(layer: ConnectionLayer, echo_port: int) -> None:
        with pytest.raises(ChannelOpenFailed) as info:
            await open_direct_tcpip(layer, "localhost", echo_port)  # PermitOpen 127.0.0.1:*
        assert info.value.message == "open failed: administratively prohibited: open failed"
        channel = await open_direct_tcpip(layer, "127.0.0.1", echo_port)
        channel.close()
        request = Writer().string("localhost").uint32(free_port()).getvalue()
        assert await layer.global_request("tcpip-forward", request) is None  # PermitListen

    _with_server(tmp_path, "", "PermitOpen 127.0.0.1:*\nPermitListen 127.0.0.1:1\n", limited)

    async def none_allowed(layer: ConnectionLayer, echo_port: int) -> None:
        with pytest.raises(ChannelOpenFailed):
            await open_direct_tcpip(layer, "127.0.0.1", echo_port)
        request = Writer().string("localhost").uint32(0).getvalue()
        assert await layer.global_request("tcpip-forward", request) is None

    _with_server(tmp_path, "restrict", "", none_allowed)
    _with_server(tmp_path, "no-port-forwarding", "", none_allowed)
    _with_server(tmp_path, "", "AllowTcpForwarding no\n", none_allowed)
    _with_server(tmp_path, "", "DisableForwarding yes\n", none_allowed)

    async def user_lists(layer: ConnectionLayer, echo_port: int) -> None:
        channel = await open_direct_tcpip(layer, "127.0.0.1", echo_port)
        channel.close()
        with pytest.raises(ChannelOpenFailed):
            await open_direct_tcpip(layer, "localhost", echo_port)
        request = Writer().string("localhost").uint32(0).getvalue()
        assert await layer.global_request("tcpip-forward", request) is None

    _with_server(tmp_path, 'permitopen="127.0.0.1:*",permitlisten="localhost:1"', "",
                 user_lists)


def test_stdio_relay(tmp_path: Path) -> None:
    """-W's relay between file descriptors and a channel (pipes here)."""
    async def client(layer: ConnectionLayer, echo_port: int) -> None:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        os.write(in_w, b"through stdio")
        os.close(in_w)
        channel = await open_direct_tcpip(layer, "127.0.0.1", echo_port)
        await stdio_relay(channel, in_r, out_w)
        os.close(out_w)
        assert os.read(out_r, 100) == b"through stdio"
        os.close(in_r)
        os.close(out_r)

    _with_server(tmp_path, "", "", client)


def test_agent_socket_in_process(tmp_path: Path) -> None:
    """serve_forwarded_agent: a 0700 directory, a socket whose connections become
    auth-agent@openssh.com channels to the client, removed when the connection ends."""
    from protocol.agent_forward import AGENT_CHANNEL, serve_forwarded_agent

    async def main() -> None:
        client, server, listener = await _pair()
        ours, theirs = ConnectionLayer(client), ConnectionLayer(server)
        seen: list[bytes] = []

        def opener(r: Reader) -> Channel | None:
            from protocol.forwarding import RelayChannel

            async def start(channel: RelayChannel) -> None:
                seen.append(await channel.read())
                await channel.write(b"agent says hi")
                channel.send_eof()
                channel.close()

            return RelayChannel(ours, AGENT_CHANNEL, start)

        ours.open_handlers[AGENT_CHANNEL] = opener
        path = await serve_forwarded_agent(theirs, os.getuid(), os.getgid())
        assert path == await serve_forwarded_agent(theirs, os.getuid(), os.getgid())
        assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(b"request")
        assert await reader.read() == b"agent says hi"
        assert seen == [b"request"]
        writer.close()
        client.disconnect()
        server.disconnect()
        await asyncio.gather(client.wait_closed(), server.wait_closed())
        listener.close()
        await asyncio.sleep(0)
        assert not os.path.exists(os.path.dirname(path))

    asyncio.run(asyncio.wait_for(main(), 30))


def test_listener_binds_loopback_only() -> None:
    from protocol.forwarding import bind_host

    assert bind_host(None, gateway_ports=0, is_client=True) == (None, False)
    assert bind_host(None, gateway_ports=1, is_client=True) == (None, True)
    assert bind_host("*", gateway_ports=0, is_client=True) == (None, True)
    assert bind_host("localhost", gateway_ports=0, is_client=True) == (None, False)
    assert bind_host("192.0.2.1", gateway_ports=0, is_client=False) == (None, False)
    assert bind_host("127.0.0.1", gateway_ports=0, is_client=False) == ("127.0.0.1", False)
    notes: list[str] = []
    assert bind_host("192.0.2.1", gateway_ports=1, is_client=False,
                     notify=notes.append) == (None, True)
    assert notes == ['Forwarding listen address "192.0.2.1" overridden by server GatewayPorts']
    assert bind_host("192.0.2.1", gateway_ports=2, is_client=False) == ("192.0.2.1", False)
