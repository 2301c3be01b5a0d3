"""Agent protocol messages (RFC 9987 with OpenSSH's extensions, PROTOCOL.agent):
numbers, typed frozen dataclasses, and their encoding on keytools.wire.

A message here is the body of one frame (message number first); ``frame`` adds the
uint32 length. ``decode_request``/``decode_response`` raise only SshError subclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from agent.certkey import decode_agent_private

# Re-exported: the constraint codec lives in agent.constraints.
from agent.constraints import CONSTRAIN_CONFIRM as CONSTRAIN_CONFIRM
from agent.constraints import CONSTRAIN_EXTENSION as CONSTRAIN_EXTENSION
from agent.constraints import CONSTRAIN_LIFETIME as CONSTRAIN_LIFETIME
from agent.constraints import CONSTRAIN_MAXSIGN as CONSTRAIN_MAXSIGN
from agent.constraints import EXT_ASSOCIATED_CERTS as EXT_ASSOCIATED_CERTS
from agent.constraints import EXT_RESTRICT_DESTINATION as EXT_RESTRICT_DESTINATION
from agent.constraints import EXT_SK_PROVIDER as EXT_SK_PROVIDER
from agent.constraints import decode_constraints as decode_constraints
from agent.constraints import encode_constraints as encode_constraints
from agent.interface import Constraints, Identity
from agent.signflags import SSH_AGENT_OLD_SIGNATURE as SSH_AGENT_OLD_SIGNATURE
from agent.signflags import SSH_AGENT_RSA_SHA2_256 as SSH_AGENT_RSA_SHA2_256
from agent.signflags import SSH_AGENT_RSA_SHA2_512 as SSH_AGENT_RSA_SHA2_512
from keytools.errors import InvalidFormat, KeyTypeUnknown, StringTooLarge
from keytools.private import PrivateKey
from keytools.public import PublicKey, decode_public_blob
from keytools.wire import Reader, Writer

# Replies.
FAILURE = 5
SUCCESS = 6
IDENTITIES_ANSWER = 12
SIGN_RESPONSE = 14
EXTENSION_FAILURE = 28
EXTENSION_RESPONSE = 29
# Requests.
REQUEST_IDENTITIES = 11
SIGN_REQUEST = 13
ADD_IDENTITY = 17
REMOVE_IDENTITY = 18
REMOVE_ALL_IDENTITIES = 19
ADD_SMARTCARD_KEY = 20
REMOVE_SMARTCARD_KEY = 21
LOCK = 22
UNLOCK = 23
ADD_ID_CONSTRAINED = 25
ADD_SMARTCARD_KEY_CONSTRAINED = 26
EXTENSION = 27

# SIGN_REQUEST flags: SSH_AGENT_OLD_SIGNATURE, SSH_AGENT_RSA_SHA2_256/512 (agent.signflags).

# Extension requests.
EXT_QUERY = "query"
EXT_SESSION_BIND = "session-bind@openssh.com"

#: OpenSSH's AGENT_MAX_LEN: the longest message either side accepts.
MAX_MESSAGE = 256 * 1024


def frame(body: bytes) -> bytes:
    """``body`` with its uint32 length prefix."""
    if len(body) > MAX_MESSAGE:
        raise StringTooLarge()
    return len(body).to_bytes(4, "big") + body


def rsa_algorithm_for_flags(flags: int) -> str | None:
    """The RSA signature algorithm a SIGN_REQUEST's flags ask for (None: ssh-rsa)."""
    if flags & SSH_AGENT_RSA_SHA2_512:
        return "rsa-sha2-512"
    if flags & SSH_AGENT_RSA_SHA2_256:
        return "rsa-sha2-256"
    return None


# --- requests ------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestIdentities:
    number: ClassVar[int] = REQUEST_IDENTITIES

    def encode(self) -> bytes:
        return bytes((self.number,))


@dataclass(frozen=True)
class SignRequest:
    """The key travels as its blob: the agent looks it up without decoding it."""

    key_blob: bytes
    data: bytes
    flags: int = 0
    number: ClassVar[int] = SIGN_REQUEST

    @property
    def key(self) -> PublicKey:
        return decode_public_blob(self.key_blob)

    def encode(self) -> bytes:
        w = Writer().byte(self.number).string(self.key_blob).string(self.data)
        return w.uint32(self.flags).getvalue()


@dataclass(frozen=True)
class AddIdentity:
    """ADD_IDENTITY, or ADD_ID_CONSTRAINED when there are constraints."""

    key: PrivateKey
    comment: str
    constraints: Constraints = field(default_factory=Constraints)

    @property
    def number(self) -> int:
        return ADD_IDENTITY if self.constraints.empty else ADD_ID_CONSTRAINED

    def encode(self) -> bytes:
        w = Writer().byte(self.number).string(self.key.key_type)
        self.key.encode_private_fields(w)
        w.string(self.comment)
        return w.raw(encode_constraints(self.constraints)).getvalue()


@dataclass(frozen=True)
class RemoveIdentity:
    key_blob: bytes
    number: ClassVar[int] = REMOVE_IDENTITY

    @property
    def key(self) -> PublicKey:
        return decode_public_blob(self.key_blob)

    def encode(self) -> bytes:
        return Writer().byte(self.number).string(self.key_blob).getvalue()


@dataclass(frozen=True)
class RemoveAllIdentities:
    number: ClassVar[int] = REMOVE_ALL_IDENTITIES

    def encode(self) -> bytes:
        return bytes((self.number,))


@dataclass(frozen=True)
class AddSmartcardKey:
    provider: str
    pin: str = field(repr=False)
    constraints: Constraints = field(default_factory=Constraints)

    @property
    def number(self) -> int:
        return ADD_SMARTCARD_KEY if self.constraints.empty else ADD_SMARTCARD_KEY_CONSTRAINED

    def encode(self) -> bytes:
        w = Writer().byte(self.number).string(self.provider).string(self.pin)
        return w.raw(encode_constraints(self.constraints)).getvalue()


@dataclass(frozen=True)
class RemoveSmartcardKey:
    provider: str
    pin: str = field(repr=False)
    number: ClassVar[int] = REMOVE_SMARTCARD_KEY

    def encode(self) -> bytes:
        return Writer().byte(self.number).string(self.provider).string(self.pin).getvalue()


@dataclass(frozen=True)
class Lock:
    passphrase: bytes = field(repr=False)
    number: ClassVar[int] = LOCK

    def encode(self) -> bytes:
        return Writer().byte(self.number).string(self.passphrase).getvalue()


@dataclass(frozen=True)
class Unlock:
    passphrase: bytes = field(repr=False)
    number: ClassVar[int] = UNLOCK

    def encode(self) -> bytes:
        return Writer().byte(self.number).string(self.passphrase).getvalue()


@dataclass(frozen=True)
class Extension:
    """OpenSSH's form: the contents follow the name unwrapped (not a nested string)."""

    name: str
    contents: bytes = b""
    number: ClassVar[int] = EXTENSION

    def encode(self) -> bytes:
        return Writer().byte(self.number).string(self.name).raw(self.contents).getvalue()


@dataclass(frozen=True)
class UnknownMessage:
    """A message number this side does not know (answered with FAILURE)."""

    number: int
    body: bytes = b""

    def encode(self) -> bytes:
        return bytes((self.number,)) + self.body


Request = (
    RequestIdentities | SignRequest | AddIdentity | RemoveIdentity | RemoveAllIdentities
    | AddSmartcardKey | RemoveSmartcardKey | Lock | Unlock | Extension | UnknownMessage
)


def decode_request(body: bytes) -> Request:
    """A request message body (number first); SshError if malformed."""
    r = Reader(body)
    number = r.byte()
    msg: Request
    if number == REQUEST_IDENTITIES:
        msg = RequestIdentities()
    elif number == SIGN_REQUEST:
        msg = SignRequest(r.string(), r.string(), r.uint32())
    elif number in (ADD_IDENTITY, ADD_ID_CONSTRAINED):
        key = decode_agent_private(r)
        comment = r.cstring()
        constraints = decode_constraints(r) if number == ADD_ID_CONSTRAINED else Constraints()
        msg = AddIdentity(key, comment, constraints)
    elif number == REMOVE_IDENTITY:
        msg = RemoveIdentity(r.string())
    elif number == REMOVE_ALL_IDENTITIES:
        msg = RemoveAllIdentities()
    elif number in (ADD_SMARTCARD_KEY, ADD_SMARTCARD_KEY_CONSTRAINED):
        provider, pin = r.cstring(), r.cstring()
        constraints = (decode_constraints(r, smartcard=True)
                       if number == ADD_SMARTCARD_KEY_CONSTRAINED else Constraints())
        msg = AddSmartcardKey(provider, pin, constraints)
    elif number == REMOVE_SMARTCARD_KEY:
        msg = RemoveSmartcardKey(r.cstring(), r.cstring())
    elif number in (LOCK, UNLOCK):
        passphrase = r.string()
        if b"\0" in passphrase:  # ssh-agent reads it as a C string
            raise InvalidFormat()
        msg = Lock(passphrase) if number == LOCK else Unlock(passphrase)
    elif number == EXTENSION:
        return Extension(r.cstring(), r.rest())
    else:
        return UnknownMessage(number, r.rest())
    r.end()
    return msg


# --- replies -------------------------------------------------------------------------

@dataclass(frozen=True)
class Success:
    number: ClassVar[int] = SUCCESS

    def encode(self) -> bytes:
        return bytes((self.number,))


@dataclass(frozen=True)
class Failure:
    number: ClassVar[int] = FAILURE

    def encode(self) -> bytes:
        return bytes((self.number,))


@dataclass(frozen=True)
class IdentitiesAnswer:
    identities: tuple[Identity, ...]
    number: ClassVar[int] = IDENTITIES_ANSWER

    def encode(self) -> bytes:
        w = Writer().byte(self.number).uint32(len(self.identities))
        for ident in self.identities:
            w.string(ident.key.blob()).string(ident.comment)
        return w.getvalue()


@dataclass(frozen=True)
class SignResponse:
    signature: bytes
    number: ClassVar[int] = SIGN_RESPONSE

    def encode(self) -> bytes:
        return Writer().byte(self.number).string(self.signature).getvalue()


@dataclass(frozen=True)
class ExtensionFailure:
    number: ClassVar[int] = EXTENSION_FAILURE

    def encode(self) -> bytes:
        return bytes((self.number,))


@dataclass(frozen=True)
class ExtensionResponse:
    """EXTENSION_RESPONSE; ``contents`` is everything after the number (for ``query``:
    string "query" then one string per supported extension)."""

    contents: bytes
    number: ClassVar[int] = EXTENSION_RESPONSE

    def encode(self) -> bytes:
        return bytes((self.number,)) + self.contents


Response = (
    Success | Failure | IdentitiesAnswer | SignResponse | ExtensionFailure
    | ExtensionResponse | UnknownMessage
)


def _decode_identities(r: Reader) -> IdentitiesAnswer:
    count = r.uint32()
    if count > MAX_MESSAGE // 8:
        raise InvalidFormat()
    found: list[Identity] = []
    for _ in range(count):
        blob = r.string()
        comment = r.cstring()
        try:
            key = decode_public_blob(blob)
        except KeyTypeUnknown:
            continue  # as ssh-add: skip key types this side does not know
        found.append(Identity(key, comment))
    return IdentitiesAnswer(tuple(found))


def decode_response(body: bytes) -> Response:
    """A reply message body (number first); SshError if malformed."""
    r = Reader(body)
    number = r.byte()
    msg: Response
    if number == SUCCESS:
        return Success() if not r.remaining else ExtensionResponse(r.rest())
    if number in (FAILURE, 30, 102):  # ssh.com's failure codes count as failures too
        return Failure()
    if number == IDENTITIES_ANSWER:
        msg = _decode_identities(r)
    elif number == SIGN_RESPONSE:
        msg = SignResponse(r.string())
    elif number == EXTENSION_FAILURE:
        msg = ExtensionFailure()
    elif number == EXTENSION_RESPONSE:
        return ExtensionResponse(r.rest())
    else:
        return UnknownMessage(number, r.rest())
    r.end()
    return msg


@dataclass(frozen=True)
class SessionBind:
    """session-bind@openssh.com contents: the host key, the session identifier, the
    host's signature over it from the key exchange, and whether this is forwarding."""

    host_key: PublicKey
    session_id: bytes
    signature: bytes
    forwarding: bool

    def encode(self) -> bytes:
        w = Writer().string(self.host_key.blob()).string(self.session_id)
        return w.string(self.signature).boolean(self.forwarding).getvalue()

    @classmethod
    def decode(cls, contents: bytes) -> SessionBind:
        r = Reader(contents)
        host_key = decode_public_blob(r.string())
        msg = cls(host_key, r.string(), r.string(), r.boolean())
        r.end()
        return msg


def decode_query_reply(contents: bytes) -> list[str]:
    """The extension names in a ``query`` reply's contents (string "query", names...)."""
    r = Reader(contents)
    if r.cstring() != EXT_QUERY:
        raise InvalidFormat()
    names: list[str] = []
    while r.remaining:
        names.append(r.cstring())
    return names


def encode_query_reply(names: list[str]) -> bytes:
    w = Writer().string(EXT_QUERY)
    for name in names:
        w.string(name)
    return w.getvalue()
