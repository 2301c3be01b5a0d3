"""User authentication, client role (RFC 4252, RFC 4256, RFC 8332, PROTOCOL's hostbound method).

Methods: none (to learn the server's list), publickey through any ``Signer`` (keytools
private keys, agent keys, identity files decrypted only once the server accepts them),
keyboard-interactive and password. The method order is ssh's (sshconnect2.c): the first
method of PreferredAuthentications the server lists is tried until it has nothing more
to send (keys run out, NumberOfPasswordPrompts reached), and a new list from the server
(partial success) starts the preference order again. RSA keys sign with the best SHA-2
algorithm the server lists in server-sig-algs; when the server advertises
publickey-hostbound@openssh.com the request binds the server's host key, as ssh does.

Prompts, banners and messages go through an ``AuthUI``; the library default asks nothing
(a fixed password, if any, answers password and keyboard-interactive prompts).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keytools.errors import ProtocolError, SshError
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.errors import AuthenticationFailed
from protocol.kex.hostkey import CERT_SUFFIX
from protocol.signer import Signer, sign_with
from protocol.transport import Transport

AUTH_MESSAGES = (
    messages.USERAUTH_FAILURE,
    messages.USERAUTH_SUCCESS,
    messages.USERAUTH_BANNER,
    messages.USERAUTH_PK_OK,
)
CONNECTION_SERVICE = "ssh-connection"
HOSTBOUND_EXTENSION = "publickey-hostbound@openssh.com"
HOSTBOUND_METHOD = "publickey-hostbound-v00@openssh.com"
PUBLICKEY = "publickey"
PASSWORD = "password"
KBD_INTERACTIVE = "keyboard-interactive"
#: ssh's default PreferredAuthentications, less the methods pyssh does not implement.
DEFAULT_PREFERRED = (PUBLICKEY, KBD_INTERACTIVE, PASSWORD)
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")
MAX_BANNERS = 16
#: keyboard-interactive: more prompts than this in one request is a hostile server.
MAX_PROMPTS = 64


class KeyUnavailable(SshError):
    """A signer could not sign (an identity file the user did not unlock): the key is
    skipped, as ssh skips it, and authentication goes on with the next one."""


def signature_algorithm(key: PublicKey, server_sig_algs: Sequence[str] | None) -> str | None:
    """The public key algorithm to offer for ``key``, or None if the server takes none.

    RSA: rsa-sha2-512, else rsa-sha2-256, by what server-sig-algs lists (with no list,
    rsa-sha2-512; never SHA-1 ssh-rsa). Certificates name the certificate form.
    """
    plain = key.plain.key_type
    cert = CERT_SUFFIX if key.is_certificate else ""
    if plain != "ssh-rsa":
        return key.key_type
    if server_sig_algs is None:
        return "rsa-sha2-512" + cert
    for alg in _RSA_ALGORITHMS:
        if alg in server_sig_algs:
            return alg + cert
    return None


@dataclass(frozen=True)
class AuthOptions:
    """ssh_config's authentication options (ssh's defaults)."""

    preferred: tuple[str, ...] = DEFAULT_PREFERRED
    pubkey: bool = True
    #: PubkeyAuthentication unbound: never publickey-hostbound-v00@openssh.com
    hostbound: bool = True
    password: bool = True
    kbd_interactive: bool = True
    #: BatchMode: password and keyboard-interactive are never tried
    batch_mode: bool = False
    password_prompts: int = 3
    kbd_devices: str = ""
    #: the host named in prompts ("user@host's password: "): HostKeyAlias or the hostname
    host: str = ""


class AuthUI:
    """What authentication shows and asks; the default shows nothing and asks nothing."""

    def ask(self, prompt: str, echo: bool) -> str | None:
        """A secret (or, with ``echo``, an answer) typed by the user; None: cannot ask."""
        return None

    def banner(self, text: str) -> None:
        """SSH_MSG_USERAUTH_BANNER text (ssh prints it to stderr as it is)."""

    def error(self, text: str) -> None:
        """ssh's error(): "Permission denied, please try again."."""

    def info(self, text: str) -> None:
        """ssh's logit(): keyboard-interactive name and instruction."""

    def verbose(self, text: str) -> None:
        """ssh's verbose()."""

    def debug(self, text: str) -> None:
        """ssh's debug()."""


class FixedPassword(AuthUI):
    """The library's UI: one password answers password and hidden keyboard-interactive
    prompts."""

    def __init__(self, password: str) -> None:
        self._password = password

    def ask(self, prompt: str, echo: bool) -> str | None:
        return None if echo else self._password


@dataclass
class AuthResult:
    """What happened: the method that succeeded and any banners the server showed."""

    method: str = ""
    banners: list[str] = field(default_factory=list)
    #: methods that succeeded partially before the last one (AuthenticationMethods)
    partial: list[str] = field(default_factory=list)


class _NotSent(Exception):
    """A method had nothing (more) to send: ssh disables it and picks the next one."""


class UserAuthClient:
    def __init__(
        self, transport: Transport, username: str, *, service: str = CONNECTION_SERVICE,
        banner: Callable[[str], None] | None = None, options: AuthOptions | None = None,
        ui: AuthUI | None = None,
    ) -> None:
        self.transport = transport
        self.username = username
        self.service = service
        self.options = options or AuthOptions()
        self.ui = ui or AuthUI()
        self.result = AuthResult()
        self._banner = banner
        self._allowed: tuple[str, ...] = ()
        self._queue = transport.subscribe(AUTH_MESSAGES)
        self._signers: list[Signer] = []
        self._tried: set[int] = set()
        self._password_attempts = 0
        self._kbd_attempts = 0
        self._info_request_seen = False
        self._disabled: set[str] = set()
        # authmethod_get's state: the list last seen, what is left of the preference
        # order for it, and the method in use.
        self._supported: tuple[str, ...] | None = None
        self._remaining: list[str] = []
        self._current: str | None = None

    @property
    def host(self) -> str:
        return self.options.host or "localhost"

    def _request(self, method: str) -> Writer:
        return (Writer().byte(messages.USERAUTH_REQUEST).string(self.username)
                .string(self.service).string(method))

    async def _reply(self) -> tuple[int, Reader]:
        """The next answer; banners are passed on and skipped."""
        while True:
            payload = await self._queue.get()
            r = Reader(payload)
            msg = r.byte()
            if msg != messages.USERAUTH_BANNER:
                return msg, r
            text = r.string().decode("utf-8", "replace")
            r.string()  # language tag
            if len(self.result.banners) < MAX_BANNERS:  # a server may send any number
                self.result.banners.append(text)
            if self._banner is not None:
                self._banner(text)
            if text:
                self.ui.banner(text)

    def _outcome(self, msg: int, r: Reader, method: str) -> bool:
        """True on SUCCESS; on FAILURE, remember the methods that can continue."""
        if msg == messages.USERAUTH_SUCCESS:
            r.end()
            self.result.method = method
            return True
        if msg != messages.USERAUTH_FAILURE:
            raise ProtocolError(f"unexpected authentication message {msg}")
        self._allowed = tuple(r.name_list())
        partial = r.boolean()
        r.end()
        if partial:
            self.ui.verbose(f"Authenticated using \"{method}\" with partial success.")
            self.result.partial.append(method)
            self._tried.clear()  # pubkey_reset: every key may be offered again
        self.ui.debug(f"Authentications that can continue: {','.join(self._allowed)}")
        return False

    # -- choosing the next method (authmethod_get) ---------------------------------

    def _enabled(self, method: str) -> bool:
        opts = self.options
        if method in self._disabled:
            return False
        if method == PUBLICKEY:
            return opts.pubkey
        if method in (PASSWORD, KBD_INTERACTIVE):
            on = opts.password if method == PASSWORD else opts.kbd_interactive
            return on and not opts.batch_mode
        return False

    def _next_method(self) -> str | None:
        allowed = self._allowed
        if self._supported != allowed:
            self._supported = allowed
            self._remaining = list(self.options.preferred)
            self._current = None
        elif self._current is not None and self._enabled(self._current):
            return self._current
        while self._remaining:
            name = self._remaining.pop(0)
            if name in allowed and self._enabled(name):
                self.ui.debug(f"Next authentication method: {name}")
                self._current = name
                return name
        self.ui.debug("No more authentication methods to try.")
        self._current = None
        return None

    # -- the methods ----------------------------------------------------------------

    async def none(self) -> bool:
        self.transport.send(self._request("none").getvalue())
        msg, r = await self._reply()
        return self._outcome(msg, r, "none")

    async def publickey(self, signer: Signer) -> bool:
        """Offer the key, and sign only if the server says it would accept it.

        Raises _NotSent when the key cannot be used (no algorithm the server takes, or
        it could not sign), so the caller goes on with the next key."""
        key = signer.public
        alg = signature_algorithm(key, self.transport.server_sig_algs)
        if alg is None:
            self.ui.debug("send_pubkey_test: no mutual signature algorithm")
            raise _NotSent()
        hostbound = self.options.hostbound \
            and HOSTBOUND_EXTENSION in self.transport.peer_extensions
        method = HOSTBOUND_METHOD if hostbound else PUBLICKEY
        host_key = self.transport.kex.host_key if self.transport.kex else None

        def request(has_signature: bool) -> Writer:
            w = self._request(method).boolean(has_signature).string(alg).string(key.blob())
            if hostbound:
                assert host_key is not None
                w.string(host_key.blob())
            return w

        self.transport.send(request(False).getvalue())
        msg, r = await self._reply()
        if msg != messages.USERAUTH_PK_OK:
            return self._outcome(msg, r, PUBLICKEY)
        if r.ascii() != alg or r.string() != key.blob():
            raise ProtocolError("server replied PK_OK for a different key")
        r.end()
        signed = request(True)
        data = Writer().string(self.transport.session_id).raw(signed.getvalue()).getvalue()
        try:
            signature = await sign_with(signer, data, alg.removesuffix(CERT_SUFFIX))
        except KeyUnavailable:
            raise _NotSent() from None
        except SshError as exc:
            self.ui.error(f"signing failed for {key.type_label}: {exc}")
            raise _NotSent() from None
        self.transport.send(signed.string(signature).getvalue())
        msg, r = await self._reply()
        return self._outcome(msg, r, PUBLICKEY)

    async def _next_key(self) -> bool:
        """userauth_pubkey: the next untried key; _NotSent when all were tried."""
        for index, signer in enumerate(self._signers):
            if index in self._tried:
                continue
            self._tried.add(index)
            try:
                return await self.publickey(signer)
            except _NotSent:
                continue
        raise _NotSent()

    async def password(self, password: str) -> bool:
        w = self._request(PASSWORD).boolean(False).string(password)
        self.transport.send(w.getvalue())
        msg, r = await self._reply()
        if msg == messages.USERAUTH_PASSWD_CHANGEREQ:
            info = r.string().decode("utf-8", "replace")
            if info:
                self.ui.info(info)
            # A password change needs old/new prompts pyssh does not do: refused.
            self.ui.info("pyssh: password change requested by the server; not supported")
            self._disabled.add(PASSWORD)
            raise _NotSent()
        return self._outcome(msg, r, PASSWORD)

    async def _ask(self, prompt: str, echo: bool) -> str:
        # In this thread, as ssh (the peer waits): Ctrl-C at the prompt restores the
        # terminal and ends pyssh instead of leaving a reader thread behind.
        answer = self.ui.ask(prompt, echo)
        return "" if answer is None else answer

    async def _password_method(self) -> bool:
        """userauth_passwd: up to NumberOfPasswordPrompts prompts."""
        if self._password_attempts >= self.options.password_prompts:
            raise _NotSent()
        self._password_attempts += 1
        if self._password_attempts != 1:
            self.ui.error("Permission denied, please try again.")
        secret = await self._ask(f"{self.username}@{self.host}'s password: ", False)
        return await self.password(secret)

    async def keyboard_interactive(self) -> bool:
        """userauth_kbdint: one request, then the server's INFO_REQUESTs until it decides."""
        if self._kbd_attempts >= self.options.password_prompts:
            raise _NotSent()
        self._kbd_attempts += 1
        if self._kbd_attempts > 1 and not self._info_request_seen:
            raise _NotSent()
        w = self._request(KBD_INTERACTIVE).string("").string(self.options.kbd_devices)
        self.transport.send(w.getvalue())
        while True:
            msg, r = await self._reply()
            if msg != messages.USERAUTH_INFO_REQUEST:
                return self._outcome(msg, r, KBD_INTERACTIVE)
            self._info_request_seen = True
            name, instruction = r.text(), r.text()
            r.string()  # language tag
            if name:
                self.ui.info(name)
            if instruction:
                self.ui.info(instruction)
            count = r.uint32()
            if count > MAX_PROMPTS:
                raise ProtocolError(f"too many keyboard-interactive prompts ({count})")
            prompts = [(r.text(), r.boolean()) for _ in range(count)]
            r.end()
            response = Writer().byte(messages.USERAUTH_INFO_RESPONSE).uint32(count)
            for prompt, echo in prompts:
                answer = await self._ask(f"({self.username}@{self.host}) {prompt}", echo)
                response.string(answer)
            self.transport.send(response.getvalue())

    async def _try(self, method: str) -> bool:
        if method == PUBLICKEY:
            return await self._next_key()
        if method == PASSWORD:
            return await self._password_method()
        return await self.keyboard_interactive()

    async def run(self, signers: Sequence[Signer] = ()) -> AuthResult:
        """none, then the preferred methods the server allows, until success or none is left."""
        self._signers = list(signers)
        try:
            await self.transport.request_service("ssh-userauth")
            if await self.none():
                return self.result
            while True:
                method = self._next_method()
                if method is None:
                    raise AuthenticationFailed(self._allowed)
                try:
                    if await self._try(method):
                        return self.result
                except _NotSent:
                    self._disabled.add(method)
        finally:
            self.transport.unsubscribe(AUTH_MESSAGES)


async def authenticate(
    transport: Transport, username: str, *, keys: Sequence[Signer] = (),
    password: str | None = None, banner: Callable[[str], None] | None = None,
    options: AuthOptions | None = None, ui: AuthUI | None = None,
) -> AuthResult:
    """Log in as ``username``; raise AuthenticationFailed ("Permission denied (...).").

    Without a ``ui``, a ``password`` is tried once (password, then keyboard-interactive
    if the server asks for nothing but hidden answers), and nothing is ever asked."""
    if ui is None:
        ui = FixedPassword(password) if password is not None else AuthUI()
        if options is None:
            options = AuthOptions(password=password is not None,
                                  kbd_interactive=password is not None, password_prompts=1)
    client = UserAuthClient(transport, username, banner=banner, options=options, ui=ui)
    return await client.run(keys)
