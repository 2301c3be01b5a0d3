"""Client authentication methods against a scripted server on our own server transport:
keyboard-interactive (RFC 4256) messages, password retries with ssh's messages,
PreferredAuthentications order, BatchMode, partial success, and a signer that cannot
sign (an identity file left locked) being skipped."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from keytools.private import generate
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.auth import (
    HOSTBOUND_METHOD,
    AuthOptions,
    AuthResult,
    AuthUI,
    KeyUnavailable,
    authenticate,
)
from protocol.errors import AuthenticationFailed
from protocol.signer import Signer
from tests.protocol.loopback import loopback

HOST_KEY = generate("ed25519")


@dataclass
class Server:
    """Lists ``methods``; accepts ``password`` by password or keyboard-interactive (one
    prompt), keys in ``keys``; ``then`` makes the first success partial."""

    methods: str = "publickey,keyboard-interactive,password"
    password: str = "right"
    keys: set[bytes] = field(default_factory=set)
    then: str | None = None
    seen: list[str] = field(default_factory=list)
    responses: list[list[str]] = field(default_factory=list)


def failure(methods: str, partial: bool = False) -> bytes:
    return (Writer().byte(messages.USERAUTH_FAILURE).name_list(methods.split(","))
            .boolean(partial).getvalue())


async def serve(transport: object, script: Server) -> None:
    from protocol.transport import Transport

    assert isinstance(transport, Transport)
    queue = transport.subscribe([messages.USERAUTH_REQUEST, messages.USERAUTH_INFO_RESPONSE])
    methods = script.methods

    def success() -> None:
        nonlocal methods
        if script.then is not None:
            methods, script.then = script.then, None
            transport.send(failure(methods, partial=True))
        else:
            transport.send(bytes((messages.USERAUTH_SUCCESS,)))

    while True:
        r = Reader(await queue.get())
        r.byte()
        r.text()
        r.ascii()
        method = r.ascii()
        script.seen.append(method)
        if method == "password":
            r.boolean()
            if r.text() == script.password:
                success()
                continue
        elif method == "keyboard-interactive":
            assert (r.text(), r.text()) == ("", "")
            transport.send(Writer().byte(messages.USERAUTH_INFO_REQUEST).string("Login")
                           .string("Type it").string("").uint32(2).string("Name: ")
                           .boolean(True).string("Password: ").boolean(False).getvalue())
            answer = Reader(await queue.get())
            assert answer.byte() == messages.USERAUTH_INFO_RESPONSE
            count = answer.uint32()
            script.responses.append([answer.text() for _ in range(count)])
            if script.responses[-1][1] == script.password:
                success()
                continue
        elif method in ("publickey", HOSTBOUND_METHOD):
            has_signature = r.boolean()
            alg, blob = r.ascii(), r.string()
            if blob in script.keys:
                if not has_signature:
                    transport.send(Writer().byte(messages.USERAUTH_PK_OK).string(alg)
                                   .string(blob).getvalue())
                else:
                    success()
                continue
        transport.send(failure(methods))


class Recorder(AuthUI):
    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, bool]] = []
        self.said: list[str] = []

    def ask(self, prompt: str, echo: bool) -> str | None:
        self.asked.append((prompt, echo))
        return self.answers.pop(0) if self.answers else ""

    def info(self, text: str) -> None:
        self.said.append(text)

    def error(self, text: str) -> None:
        self.said.append(text)


def attempt(script: Server, ui: AuthUI, options: AuthOptions,
            keys: list[Signer] | None = None) -> AuthResult | Exception:
    async def main() -> AuthResult | Exception:
        lb, cerr, serr = await loopback([HOST_KEY])
        assert lb is not None, (cerr, serr)
        task = asyncio.create_task(serve(lb.server, script))
        try:
            return await asyncio.wait_for(
                authenticate(lb.client, "alice", keys=keys or [], options=options, ui=ui), 10)
        except Exception as exc:
            return exc
        finally:
            task.cancel()
            await lb.close()

    return asyncio.run(main())


OPTIONS = AuthOptions(host="example.org")


def test_keyboard_interactive_prompts_and_answers() -> None:
    script = Server()
    ui = Recorder(["alice", "right"])
    result = attempt(script, ui, OPTIONS)
    assert isinstance(result, AuthResult) and result.method == "keyboard-interactive"
    assert ui.asked == [("(alice@example.org) Name: ", True),
                        ("(alice@example.org) Password: ", False)]
    assert ui.said == ["Login", "Type it"]
    assert script.responses == [["alice", "right"]]
    assert script.seen == ["none", "keyboard-interactive"]


def test_password_retries_as_ssh() -> None:
    script = Server(methods="password")
    ui = Recorder(["a", "b", "right"])
    result = attempt(script, ui, OPTIONS)
    assert isinstance(result, AuthResult) and result.method == "password"
    assert ui.asked == [("alice@example.org's password: ", False)] * 3
    assert ui.said == ["Permission denied, please try again."] * 2


def test_number_of_password_prompts_then_denied() -> None:
    script = Server(methods="password,keyboard-interactive")
    ui = Recorder(["a", "b", "c", "d"])
    options = AuthOptions(host="h", password_prompts=2, preferred=("password",))
    result = attempt(script, ui, options)
    assert isinstance(result, AuthenticationFailed)
    assert str(result) == "Permission denied (password,keyboard-interactive)."
    assert len(ui.asked) == 2 and script.seen == ["none", "password", "password"]


def test_preferred_order_and_disabled_methods() -> None:
    script = Server()
    ui = Recorder(["right"])
    options = AuthOptions(host="h", preferred=("password", "keyboard-interactive"))
    result = attempt(script, ui, options)
    assert isinstance(result, AuthResult) and result.method == "password"
    script = Server()
    options = AuthOptions(host="h", kbd_interactive=False)
    result = attempt(script, Recorder(["right"]), options)
    assert isinstance(result, AuthResult) and script.seen == ["none", "password"]


def test_batch_mode_asks_nothing() -> None:
    script = Server()
    ui = Recorder(["right"])
    result = attempt(script, ui, AuthOptions(host="h", batch_mode=True))
    assert isinstance(result, AuthenticationFailed) and ui.asked == []
    assert script.seen == ["none"]


def test_partial_success_then_password() -> None:
    key = generate("ed25519")
    script = Server(methods="publickey", keys={key.public.blob()}, then="password")
    ui = Recorder(["right"])
    result = attempt(script, ui, OPTIONS, [key])
    assert isinstance(result, AuthResult)
    assert result.method == "password" and result.partial == ["publickey"]


def test_locked_key_is_skipped() -> None:
    """A signer raising KeyUnavailable (passphrase not given) is passed over."""
    locked, usable = generate("ed25519"), generate("ed25519")

    class Locked:
        public = locked.public

        def sign(self, data: bytes, algorithm: str | None = None) -> bytes:
            raise KeyUnavailable("key not available")

    script = Server(methods="publickey", keys={locked.public.blob(), usable.public.blob()})
    result = attempt(script, AuthUI(), OPTIONS, [Locked(), usable])
    assert isinstance(result, AuthResult) and result.method == "publickey"
    assert script.seen == ["none", HOSTBOUND_METHOD, HOSTBOUND_METHOD, HOSTBOUND_METHOD]


@pytest.mark.parametrize("text", ["plain\n", "esc \x1b[31m red\n"])
def test_banner_made_safe(text: str) -> None:
    from protocol.ssh_prompt import safe_text

    assert safe_text(text) == text.replace("\x1b", "\\033")


def test_unbound_publickey() -> None:
    """PubkeyAuthentication unbound: plain "publickey" even where hostbound is offered."""
    key = generate("ed25519")
    script = Server(methods="publickey", keys={key.public.blob()})
    result = attempt(script, AuthUI(), AuthOptions(hostbound=False), [key])
    assert isinstance(result, AuthResult)
    assert script.seen == ["none", "publickey", "publickey"]
