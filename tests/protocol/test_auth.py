"""Client user authentication against a scripted server on our own server transport:
the RFC 4252 message layouts, the signed data (also the hostbound form), RSA algorithm
choice by server-sig-algs, password, banners and partial success."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from keytools.keyfile import load_private
from keytools.private import PrivateKey, generate
from keytools.public import decode_public_blob
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.auth import HOSTBOUND_METHOD, AuthResult, authenticate, signature_algorithm
from protocol.errors import AuthenticationFailed
from protocol.signer import Signer
from protocol.transport import Transport, TransportConfig
from tests.helpers import private_copy
from tests.protocol.loopback import loopback


@dataclass
class Request:
    method: str
    user: str
    has_signature: bool = False
    algorithm: str = ""
    blob: bytes = b""
    host_key: bytes = b""
    signature_ok: bool | None = None
    password: str = ""


@dataclass
class Script:
    """Answers: which key blobs and passwords to accept; what to list after failures."""

    keys: set[bytes] = field(default_factory=set)
    password: str | None = None
    methods: str = "publickey,password"
    banner: str = ""
    two_factor: bool = False  # publickey is only a partial success, password must follow
    seen: list[Request] = field(default_factory=list)


def failure(methods: str, partial: bool = False) -> bytes:
    return Writer().byte(messages.USERAUTH_FAILURE).name_list(methods.split(",")).boolean(
        partial).getvalue()


async def serve(server: Transport, script: Script) -> None:
    queue = server.subscribe([messages.USERAUTH_REQUEST])
    key_done = False
    while True:
        payload = await queue.get()
        r = Reader(payload)
        r.byte()
        req = Request(user=r.text(), method="")
        assert r.ascii() == "ssh-connection"
        req.method = r.ascii()
        script.seen.append(req)
        if script.banner:
            server.send(Writer().byte(messages.USERAUTH_BANNER).string(script.banner)
                        .string("").getvalue())
            script.banner = ""
        if req.method in ("publickey", HOSTBOUND_METHOD):
            req.has_signature = r.boolean()
            req.algorithm, req.blob = r.ascii(), r.string()
            if req.method == HOSTBOUND_METHOD:
                req.host_key = r.string()
            if req.blob not in script.keys:
                server.send(failure(script.methods))
                continue
            if not req.has_signature:
                server.send(Writer().byte(messages.USERAUTH_PK_OK).string(req.algorithm)
                            .string(req.blob).getvalue())
                continue
            signed_end = r.position
            signature = r.string()
            r.end()
            data = Writer().string(server.session_id).raw(payload[:signed_end]).getvalue()
            try:
                decode_public_blob(req.blob).verify(data, signature)
                req.signature_ok = Reader(signature).ascii() == req.algorithm.removesuffix(
                    "-cert-v01@openssh.com")
            except Exception:
                req.signature_ok = False
            if req.signature_ok and script.two_factor and not key_done:
                key_done = True
                server.send(failure("password", partial=True))
            elif req.signature_ok:
                server.send(bytes((messages.USERAUTH_SUCCESS,)))
                return
            else:
                server.send(failure(script.methods))
        elif req.method == "password":
            assert not r.boolean()
            req.password = r.text()
            if req.password == script.password and (key_done or not script.two_factor):
                server.send(bytes((messages.USERAUTH_SUCCESS,)))
                return
            server.send(failure(script.methods))
        else:
            server.send(failure(script.methods))


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> PrivateKey:
    path: Path = private_copy("sshkey/rsa_1", tmp_path_factory.mktemp("rsa"))
    return load_private(str(path), None)[0]


HOST_KEY = generate("ed25519")


def attempt(script: Script, keys: list[Signer], password: str | None = None,
            server_config: TransportConfig | None = None) -> AuthResult | Exception:
    async def main() -> AuthResult | Exception:
        lb, cerr, serr = await loopback([HOST_KEY], server_config=server_config)
        assert lb is not None, (cerr, serr)
        task = asyncio.create_task(serve(lb.server, script))
        try:
            return await asyncio.wait_for(
                authenticate(lb.client, "alice", keys=keys, password=password), 10)
        except Exception as exc:
            return exc
        finally:
            task.cancel()
            await lb.close()

    return asyncio.run(main())


def test_publickey_hostbound_signature(rsa_key: PrivateKey) -> None:
    ed = generate("ed25519")
    script = Script(keys={ed.public.blob()})
    result = attempt(script, [rsa_key, ed])
    assert isinstance(result, AuthResult) and result.method == "publickey"
    methods = [(r.method, r.has_signature, r.algorithm) for r in script.seen]
    # none; the RSA key offered with SHA-2 and refused (never signed); then ed25519.
    assert methods == [
        ("none", False, ""),
        (HOSTBOUND_METHOD, False, "rsa-sha2-512"),
        (HOSTBOUND_METHOD, False, "ssh-ed25519"),
        (HOSTBOUND_METHOD, True, "ssh-ed25519"),
    ]
    assert script.seen[-1].signature_ok
    assert script.seen[-1].host_key == HOST_KEY.public.blob()


@pytest.mark.parametrize(("sig_algs", "expected"), [
    (("rsa-sha2-256", "ssh-ed25519"), "rsa-sha2-256"),
    (("rsa-sha2-512", "rsa-sha2-256"), "rsa-sha2-512"),
])
def test_rsa_algorithm_follows_server_sig_algs(rsa_key: PrivateKey, sig_algs: tuple[str, ...],
                                               expected: str) -> None:
    script = Script(keys={rsa_key.public.blob()})
    result = attempt(script, [rsa_key], server_config=TransportConfig(server_sig_algs=sig_algs))
    assert isinstance(result, AuthResult)
    assert script.seen[-1].algorithm == expected and script.seen[-1].signature_ok


def test_rsa_key_skipped_when_server_takes_only_sha1(rsa_key: PrivateKey) -> None:
    assert signature_algorithm(rsa_key.public, ("ssh-rsa", "ssh-ed25519")) is None
    script = Script(keys={rsa_key.public.blob()}, methods="publickey")
    result = attempt(script, [rsa_key],
                     server_config=TransportConfig(server_sig_algs=("ssh-rsa",)))
    assert isinstance(result, AuthenticationFailed)
    assert [r.method for r in script.seen] == ["none"]


def test_plain_publickey_without_hostbound_extension() -> None:
    ed = generate("ed25519")
    script = Script(keys={ed.public.blob()})

    class NoHostbound(Transport):
        def _ext_info(self) -> bytes:
            return (Writer().byte(messages.EXT_INFO).uint32(1).string("server-sig-algs")
                    .string("ssh-ed25519").getvalue())

    async def main() -> AuthResult:
        lb, _, _ = await loopback([HOST_KEY], server_cls=NoHostbound)
        assert lb is not None
        task = asyncio.create_task(serve(lb.server, script))
        try:
            return await authenticate(lb.client, "alice", keys=[ed])
        finally:
            task.cancel()
            await lb.close()

    assert asyncio.run(main()).method == "publickey"
    assert [r.method for r in script.seen][1:] == ["publickey", "publickey"]
    assert script.seen[-1].signature_ok and script.seen[-1].host_key == b""


def test_password_banner_and_partial_success() -> None:
    ed = generate("ed25519")
    script = Script(keys={ed.public.blob()}, password="s3cret", banner="Authorized use only\n",
                    two_factor=True)
    result = attempt(script, [ed], password="s3cret")
    assert isinstance(result, AuthResult)
    assert result.method == "password"
    assert result.banners == ["Authorized use only\n"]
    assert [r.method for r in script.seen][-1] == "password"
    assert script.seen[-1].password == "s3cret"


def test_everything_refused() -> None:
    script = Script(password="right")
    result = attempt(script, [generate("ed25519")], password="wrong")
    assert isinstance(result, AuthenticationFailed)
    assert result.methods == ("publickey", "password")
    assert str(result) == "Permission denied (publickey,password)."


def test_async_signer_fits() -> None:
    """An agent-style signer with ``async def sign`` works like a PrivateKey."""
    ed = generate("ed25519")

    class AsyncSigner:
        public = ed.public

        async def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
            await asyncio.sleep(0)
            return ed.sign(data, algorithm)

    script = Script(keys={ed.public.blob()})
    result = attempt(script, [AsyncSigner()])
    assert isinstance(result, AuthResult) and script.seen[-1].signature_ok


