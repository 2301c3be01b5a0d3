"""User authentication, client role (RFC 4252, RFC 8332, PROTOCOL's hostbound method).

Methods: none (to learn the server's list), publickey through any ``Signer`` (keytools
private keys now, agent keys later), and password. RSA keys sign with the best SHA-2
algorithm the server lists in server-sig-algs; when the server advertises
publickey-hostbound@openssh.com the request binds the server's host key, as ssh does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from keytools.errors import ProtocolError
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
_RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256")
MAX_BANNERS = 16


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


@dataclass
class AuthResult:
    """What happened: the method that succeeded and any banners the server showed."""

    method: str = ""
    banners: list[str] = field(default_factory=list)


class UserAuthClient:
    def __init__(
        self, transport: Transport, username: str, *, service: str = CONNECTION_SERVICE,
        banner: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.username = username
        self.service = service
        self.result = AuthResult()
        self._banner = banner
        self._allowed: tuple[str, ...] = ()
        self._queue = transport.subscribe(AUTH_MESSAGES)

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
            if len(self.result.banners) < MAX_BANNERS:  # a server may send any number
                self.result.banners.append(text)
            if self._banner is not None:
                self._banner(text)

    def _outcome(self, msg: int, r: Reader, method: str) -> bool:
        """True on SUCCESS; on FAILURE, remember the methods that can continue."""
        if msg == messages.USERAUTH_SUCCESS:
            r.end()
            self.result.method = method
            return True
        if msg != messages.USERAUTH_FAILURE:
            raise ProtocolError(f"unexpected authentication message {msg}")
        self._allowed = tuple(r.name_list())
        r.boolean()  # partial success: the new list already says what is left
        return False

    async def none(self) -> bool:
        self.transport.send(self._request("none").getvalue())
        msg, r = await self._reply()
        return self._outcome(msg, r, "none")

    async def publickey(self, signer: Signer) -> bool:
        """Offer the key, and sign only if the server says it would accept it."""
        key = signer.public
        alg = signature_algorithm(key, self.transport.server_sig_algs)
        if alg is None:
            return False
        hostbound = HOSTBOUND_EXTENSION in self.transport.peer_extensions
        method = HOSTBOUND_METHOD if hostbound else "publickey"
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
            return self._outcome(msg, r, "publickey")
        if r.ascii() != alg or r.string() != key.blob():
            raise ProtocolError("server replied PK_OK for a different key")
        r.end()
        signed = request(True)
        data = Writer().string(self.transport.session_id).raw(signed.getvalue()).getvalue()
        signature = await sign_with(signer, data, alg.removesuffix(CERT_SUFFIX))
        self.transport.send(signed.string(signature).getvalue())
        msg, r = await self._reply()
        return self._outcome(msg, r, "publickey")

    async def password(self, password: str) -> bool:
        self.transport.send(self._request("password").boolean(False).string(password).getvalue())
        msg, r = await self._reply()
        if msg == messages.USERAUTH_PASSWD_CHANGEREQ:
            return False  # a password change would need a prompt; treat as refused
        return self._outcome(msg, r, "password")

    async def run(self, signers: Sequence[Signer] = (), password: str | None = None) -> AuthResult:
        """Try none, each key, then the password, as the server's list allows."""
        try:
            await self.transport.request_service("ssh-userauth")
            if await self.none():
                return self.result
            for signer in signers:
                if "publickey" in self._allowed and await self.publickey(signer):
                    return self.result
            if password is not None and "password" in self._allowed \
                    and await self.password(password):
                return self.result
            raise AuthenticationFailed(self._allowed)
        finally:
            self.transport.unsubscribe(AUTH_MESSAGES)


async def authenticate(
    transport: Transport, username: str, *, keys: Sequence[Signer] = (),
    password: str | None = None, banner: Callable[[str], None] | None = None,
) -> AuthResult:
    """Log in as ``username`` with the keys, then the password; raise AuthenticationFailed."""
    return await UserAuthClient(transport, username, banner=banner).run(keys, password)
