"""The key exchange state machine, for both roles, for the first kex and every rekey.

The transport calls ``handle`` for each message 20..49 in arrival order and awaits it,
so new incoming keys are installed at NEWKEYS before the next packet is decoded. The
engine talks back through ``KexHooks``: send a kex message, switch a direction's keys
(resetting its sequence number under strict kex), report completion.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from keytools.errors import ProtocolError
from keytools.public import PublicKey
from keytools.wire import Reader, Writer
from protocol import messages
from protocol.ciphers import CIPHERS, MACS, Protection, key_need
from protocol.errors import HostKeyNotVerified
from protocol.kex import dh
from protocol.kex.base import Agreement
from protocol.kex.derive import HashInputs, exchange_hash, session_protections
from protocol.kex.hostkey import algorithms_for_key, signature_algorithm, verify_host_signature
from protocol.kex.kexinit import (
    EXT_INFO_CLIENT,
    EXT_INFO_SERVER,
    STRICT_CLIENT,
    STRICT_SERVER,
    Algorithms,
    KexInit,
    Preferences,
    guess_was_right,
    negotiate,
)
from protocol.kex.methods import KexMethod, get_method
from protocol.signer import Signer, sign_with

#: Client role: decide about the server's (signature-checked) host key; raise to refuse.
HostKeyVerifier = Callable[[PublicKey], Awaitable[None]]


class KexHooks(Protocol):
    def send_kex(self, payload: bytes) -> None: ...

    def install_outgoing(self, protection: Protection, reset_seq: bool) -> None: ...

    def install_incoming(self, protection: Protection, reset_seq: bool) -> None: ...

    def kex_complete(self, first: bool) -> None: ...


@dataclass
class _Round:
    """One key exchange in progress after both KEXINITs are known."""

    algs: Algorithms
    method: KexMethod
    inputs: HashInputs
    expect: int
    agreement: Agreement | None = None
    client_public: bytes = b""
    middle: bytes = b""  # group exchange fields of the hash
    gex_range: tuple[int, int, int] = (0, 0, 0)
    incoming: Protection | None = None  # installed when the peer's NEWKEYS arrives


class KexEngine:
    def __init__(
        self, *, client: bool, prefs: Preferences, hooks: KexHooks, client_version: str,
        server_version: str, host_keys: Sequence[Signer] = (),
        verify_host_key: HostKeyVerifier | None = None, strict: bool = True,
        ext_info: bool = True,
    ) -> None:
        self.client = client
        self.prefs = prefs
        self.hooks = hooks
        self._versions = (client_version, server_version)
        self._host_keys: dict[str, Signer] = {}
        for signer in host_keys:
            for alg in algorithms_for_key(signer.public):
                self._host_keys.setdefault(alg, signer)
        self._verify = verify_host_key
        self._offer_strict = strict
        self._offer_ext_info = ext_info
        #: H of the first exchange
        self.session_id: bytes | None = None
        #: strict kex negotiated (both sides offered it in their first KEXINIT)
        self.strict = False
        #: the peer offered ext-info-c (or ext-info-s) in its first KEXINIT
        self.peer_ext_info = False
        self.algorithms: Algorithms | None = None
        #: client: the server's verified host key; server: the key we signed with
        self.host_key: PublicKey | None = None
        #: client: the server's signature over the session id (the first exchange hash),
        #: kept with ``host_key`` for session-bind@openssh.com to the agent
        self.initial_signature: bytes | None = None
        self.completed = 0
        self._ours: KexInit | None = None
        self._theirs: KexInit | None = None
        self._round: _Round | None = None
        self._newkeys_sent = False
        self._skip_guess = False

    @property
    def sending_blocked(self) -> bool:
        """We sent KEXINIT but not yet NEWKEYS: only kex messages may go out."""
        return self._ours is not None and not self._newkeys_sent

    @property
    def peer_in_kex(self) -> bool:
        """The peer sent KEXINIT and not yet NEWKEYS: it may send only kex messages."""
        return self._theirs is not None

    @property
    def in_progress(self) -> bool:
        return self._ours is not None or self._theirs is not None

    def _host_key_offer(self) -> tuple[str, ...]:
        if self.client:
            return self.prefs.host_key
        return tuple(alg for alg in self.prefs.host_key if alg in self._host_keys)

    def start(self) -> None:
        """Send our KEXINIT (no-op while one is outstanding)."""
        if self._ours is not None:
            return
        extra: tuple[str, ...] = ()
        if self.completed == 0:
            if self._offer_ext_info:
                extra += (EXT_INFO_CLIENT if self.client else EXT_INFO_SERVER,)
            if self._offer_strict:
                extra += (STRICT_CLIENT if self.client else STRICT_SERVER,)
        self._ours = KexInit.build(self.prefs, self._host_key_offer(), extra)
        self.hooks.send_kex(self._ours.payload)

    async def handle(self, seq: int, payload: bytes) -> None:
        msg = payload[0]
        if msg == messages.KEXINIT:
            self._on_kexinit(seq, payload)
        elif msg == messages.NEWKEYS:
            self._on_newkeys(payload)
        else:
            await self._on_method_message(msg, payload)

    def _on_kexinit(self, seq: int, payload: bytes) -> None:
        if self._theirs is not None:
            raise ProtocolError("KEXINIT during key exchange")
        theirs = KexInit.parse(payload)
        if self.completed == 0:
            self.strict = self._offer_strict and (
                (STRICT_SERVER if self.client else STRICT_CLIENT) in theirs.kex
            )
            if self.strict and seq != 0:
                raise ProtocolError("strict KEX violation: KEXINIT was not the first packet")
            self.peer_ext_info = (EXT_INFO_SERVER if self.client else EXT_INFO_CLIENT) in theirs.kex
        self._theirs = theirs
        self.start()
        assert self._ours is not None
        c_init, s_init = (self._ours, theirs) if self.client else (theirs, self._ours)
        algs = negotiate(c_init, s_init, we_are_client=self.client)
        self.algorithms = algs
        self._skip_guess = theirs.first_kex_follows and not guess_was_right(c_init, s_init)
        method = get_method(algs.kex)
        inputs = HashInputs(self._versions[0], self._versions[1], c_init.payload, s_init.payload)
        if not self.client:
            first = messages.KEX_DH_GEX_REQUEST if method.group_exchange else messages.KEX_ECDH_INIT
            self._round = _Round(algs, method, inputs, first)
            return
        rnd = _Round(algs, method, inputs, messages.KEX_ECDH_REPLY)
        self._round = rnd
        if method.group_exchange:
            rnd.gex_range = dh.gex_request(self._need(algs))
            mn, n, mx = rnd.gex_range
            rnd.expect = messages.KEX_DH_GEX_GROUP
            self.hooks.send_kex(
                Writer().byte(messages.KEX_DH_GEX_REQUEST).uint32(mn).uint32(n).uint32(mx)
                .getvalue()
            )
        else:
            assert method.agreement is not None
            rnd.agreement = method.agreement()
            rnd.client_public = rnd.agreement.client_public()
            self.hooks.send_kex(bytes((messages.KEX_ECDH_INIT,)) + rnd.client_public)

    @staticmethod
    def _need(algs: Algorithms) -> int:
        return max(
            key_need(CIPHERS[cipher], MACS[mac] if mac else None)
            for cipher, mac in ((algs.cipher_c2s, algs.mac_c2s), (algs.cipher_s2c, algs.mac_s2c))
        )

    async def _on_method_message(self, msg: int, payload: bytes) -> None:
        rnd = self._round
        if rnd is None or self._newkeys_sent:
            raise ProtocolError(f"unexpected key exchange message {msg}")
        if self._skip_guess:  # the peer's guessed packet for a method we did not pick
            self._skip_guess = False
            return
        if msg != rnd.expect:
            raise ProtocolError(f"unexpected key exchange message {msg}")
        r = Reader(payload)
        r.byte()
        if self.client:
            await self._client_step(rnd, msg, r)
        else:
            await self._server_step(rnd, msg, r)

    async def _client_step(self, rnd: _Round, msg: int, r: Reader) -> None:
        if msg == messages.KEX_DH_GEX_GROUP and rnd.method.group_exchange:
            p, g = r.mpint(), r.mpint()
            r.end()
            mn, n, mx = rnd.gex_range
            dh.check_gex_group(p, g, mn, mx)
            rnd.agreement = dh.DhAgreement(p, g, dh.exponent_bits(self._need(rnd.algs)))
            rnd.middle = Writer().uint32(mn).uint32(n).uint32(mx).mpint(p).mpint(g).getvalue()
            rnd.client_public = rnd.agreement.client_public()
            rnd.expect = messages.KEX_DH_GEX_REPLY
            self.hooks.send_kex(bytes((messages.KEX_DH_GEX_INIT,)) + rnd.client_public)
            return
        assert rnd.agreement is not None
        host_key_blob = r.string()
        server_public = rnd.agreement.read_public(r)
        signature = r.string()
        r.end()
        shared = rnd.agreement.client_shared(server_public)
        h = exchange_hash(rnd.method.hash_name, rnd.inputs, host_key_blob, rnd.middle,
                          rnd.client_public, server_public, shared)
        key = verify_host_signature(rnd.algs.host_key, host_key_blob, signature, h)
        if self.host_key is None:
            if self._verify is None:
                raise HostKeyNotVerified()
            await self._verify(key)
        elif key.blob() != self.host_key.blob():
            raise HostKeyNotVerified("server host key changed during rekey")
        if self.initial_signature is None:
            self.initial_signature = signature
        self.host_key = key
        self._finish(rnd, h, shared)

    async def _server_step(self, rnd: _Round, msg: int, r: Reader) -> None:
        if msg == messages.KEX_DH_GEX_REQUEST:
            mn, n, mx = r.uint32(), r.uint32(), r.uint32()
            r.end()
            p, g = dh.choose_gex_group(mn, n, mx)
            rnd.agreement = dh.DhAgreement(p, g, dh.exponent_bits(self._need(rnd.algs)))
            rnd.middle = Writer().uint32(mn).uint32(n).uint32(mx).mpint(p).mpint(g).getvalue()
            rnd.expect = messages.KEX_DH_GEX_INIT
            self.hooks.send_kex(
                Writer().byte(messages.KEX_DH_GEX_GROUP).mpint(p).mpint(g).getvalue()
            )
            return
        if rnd.agreement is None:
            assert rnd.method.agreement is not None
            rnd.agreement = rnd.method.agreement()
        client_public = rnd.agreement.read_public(r)
        r.end()
        server_public, shared = rnd.agreement.server_reply(client_public)
        signer = self._host_keys[rnd.algs.host_key]
        host_key_blob = signer.public.blob()
        h = exchange_hash(rnd.method.hash_name, rnd.inputs, host_key_blob, rnd.middle,
                          client_public, server_public, shared)
        signature = await sign_with(signer, h, signature_algorithm(rnd.algs.host_key))
        self.host_key = signer.public
        reply = messages.KEX_DH_GEX_REPLY if rnd.method.group_exchange else messages.KEX_ECDH_REPLY
        self.hooks.send_kex(
            Writer().byte(reply).string(host_key_blob).raw(server_public).string(signature)
            .getvalue()
        )
        self._finish(rnd, h, shared)

    def _finish(self, rnd: _Round, h: bytes, shared: bytes) -> None:
        if self.session_id is None:
            self.session_id = h
        c2s, s2c = session_protections(rnd.method.hash_name, shared, h, self.session_id, rnd.algs)
        outgoing, rnd.incoming = (c2s, s2c) if self.client else (s2c, c2s)
        rnd.expect = messages.NEWKEYS
        self.hooks.send_kex(bytes((messages.NEWKEYS,)))
        self._newkeys_sent = True
        self.hooks.install_outgoing(outgoing, self.strict)

    def _on_newkeys(self, payload: bytes) -> None:
        rnd = self._round
        if rnd is None or rnd.incoming is None:
            raise ProtocolError("unexpected NEWKEYS")
        Reader(payload[1:]).end()
        self.hooks.install_incoming(rnd.incoming, self.strict)
        self._ours = self._theirs = self._round = None
        self._newkeys_sent = False
        self.completed += 1
        self.hooks.kex_complete(self.completed == 1)
