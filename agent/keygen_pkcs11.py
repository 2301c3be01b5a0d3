"""A PKCS#11 provider's keys for pykeygen (-D), found and used as ssh-keygen does.

ssh-keygen reads a token with ssh-pkcs11.c in "interactive" mode: it lists the public
key objects (and X.509 certificates) of every initialised token without logging in,
logs in with -P when one is given, and otherwise asks ``Enter PIN for 'label': `` the
first time a key signs (or when a token shows no keys until one logs in). This module
does the same through python-pkcs11, logs the same lines to stderr, and signs with
agent.pkcs11's token-key code. python-pkcs11 is imported only when a provider is read.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keytools.cli.keysources import KeySourceError, TokenKey
from keytools.cli.output import error
from keytools.errors import SshError
from keytools.public import EcdsaPublic, PublicKey, RsaPublic

#: the symbol ssh-pkcs11.c's lib_contains_symbol() looks for before dlopen()
_ENTRY = b"C_GetFunctionList"
_INT_MAX = 0x7FFF_FFFF

#: python-pkcs11 error class -> CK_RV, for OpenSSH's "... failed: %lu" lines
_RV = {
    "GeneralError": 0x05, "FunctionFailed": 0x06, "ArgumentsBad": 0x07,
    "AttributeSensitive": 0x11, "AttributeTypeInvalid": 0x12, "DeviceError": 0x30,
    "DeviceMemory": 0x31, "DeviceRemoved": 0x32, "FunctionCancelled": 0x50,
    "FunctionNotSupported": 0x54, "KeyHandleInvalid": 0x60, "MechanismInvalid": 0x70,
    "ObjectHandleInvalid": 0x82, "OperationActive": 0x90, "PinIncorrect": 0xA0,
    "PinInvalid": 0xA1, "PinLenRange": 0xA2, "PinExpired": 0xA3, "PinLocked": 0xA4,
    "SessionClosed": 0xB0, "SessionCount": 0xB1, "SessionHandleInvalid": 0xB3,
    "SessionReadOnlyExists": 0xB7, "TokenNotPresent": 0xE0, "TokenNotRecognised": 0xE1,
    "UserAlreadyLoggedIn": 0x100, "UserNotLoggedIn": 0x101, "UserPinNotInitialized": 0x102,
    "UserTypeInvalid": 0x103, "AnotherUserAlreadyLoggedIn": 0x104,
    "UserTooManyTypes": 0x105,
}
#: pkcs11_login_slot()'s words for a refused PIN
_LOGIN_FAILURES = {
    "PinLenRange": "PIN length out of range",
    "PinIncorrect": "PIN incorrect",
    "PinLocked": "PIN locked",
}
#: OpenSSL's short names for the X.509 subject (X509_NAME_oneline)
_SHORT_NAMES = {"1.2.840.113549.1.9.1": "emailAddress", "2.5.4.5": "serialNumber"}

Log = Callable[[str], None]
AskPin = Callable[[str], "str | None"]


def _rv(exc: BaseException) -> str:
    """The CK_RV behind a python-pkcs11 error, as OpenSSH prints it (%lu)."""
    code = _RV.get(type(exc).__name__)
    return str(code) if code is not None else type(exc).__name__


def read_pin(prompt: str) -> str | None:
    """read_passphrase(prompt, RP_ALLOW_EOF): the terminal, else SSH_ASKPASS when a
    display (or SSH_ASKPASS_REQUIRE=force) allows it; None when nobody can be asked.
    Unlike a key's passphrase, a PIN is never read from a non-terminal stdin."""
    from keytools.cli.prompt import _askpass

    require = os.environ.get("SSH_ASKPASS_REQUIRE", "").lower()
    display = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if require != "force" and not (require == "prefer" and display):
        try:
            with open("/dev/tty", "wb", buffering=0) as tty:
                tty.write(b"\r")  # as OpenSSH: the prompt starts its line
        except OSError:
            pass
        else:
            import getpass

            try:
                return getpass.getpass(prompt)
            except (EOFError, OSError):
                return None
    ran, answer = _askpass(prompt)
    return answer if ran else None


def _library_ok(path: str, log: Log) -> bool:
    """lib_contains_symbol(): the provider must be a regular file naming the entry point."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        log(f"lib_contains_symbol: open {path}: {exc.strerror}")
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            log(f"lib_contains_symbol: {path} is not a regular file")
            return False
        if info.st_size < len(_ENTRY) or info.st_size >= _INT_MAX // 2:
            log(f"lib_contains_symbol: {path} bad size {info.st_size}")
            return False
        with mmap.mmap(fd, 0, prot=mmap.PROT_READ) as data:
            if data.find(_ENTRY) < 0:
                log(f"lib_contains_symbol: {path} does not contain expected string "
                    f"{_ENTRY.decode()}")
                return False
    except OSError as exc:
        log(f"lib_contains_symbol: mmap {path}: {exc.strerror}")
        return False
    finally:
        os.close(fd)
    return True


def _subject_oneline(cert: Any) -> str:
    """X509_NAME_oneline() of a certificate's subject: ``/CN=name/O=org``."""
    parts = []
    for attr in cert.subject:
        name = _SHORT_NAMES.get(attr.oid.dotted_string) or attr.rfc4514_attribute_name
        parts.append(f"/{name}={attr.value}")
    return "".join(parts)


@dataclass(eq=False)
class _Slot:
    """One initialised token and the session ssh-pkcs11.c keeps open on it."""

    token: Any
    label: str
    flags: Any
    mechanisms: frozenset[str]
    session: Any = None
    logged_in: bool = False
    signer: Any = field(default=None, repr=False)


class TokenSource:
    """``pkcs11_keys`` for pykeygen: (provider, PIN or None) -> the provider's keys."""

    def __init__(self, log: Log = error, ask_pin: AskPin = read_pin) -> None:
        self._log = log
        self._ask_pin = ask_pin
        self._libs: dict[str, Any] = {}
        self._slots: list[_Slot] = []

    # -- loading -------------------------------------------------------------------------

    def __call__(self, provider: str, pin: str | None) -> list[TokenKey]:
        """pkcs11_add_provider(): KeySourceError (its lines logged) if nothing is read."""
        lib = self._library(provider)
        from pkcs11.exceptions import PKCS11Error

        try:
            slots = list(lib.get_slots(token_present=True))
        except PKCS11Error as exc:
            self._log(f"C_GetSlotList failed: {_rv(exc)}")
            raise KeySourceError() from None
        keys: list[TokenKey] = []
        for index, slot in enumerate(slots):
            self._read_slot(provider, index, slot, pin, keys)
        return keys

    def _library(self, provider: str) -> Any:
        if provider in self._libs:
            return self._libs[provider]
        if not _library_ok(provider, self._log):
            self._log(f"provider {provider} is not a PKCS11 library")
            raise KeySourceError()
        try:
            import pkcs11
            from pkcs11.exceptions import PKCS11Error
        except ImportError:
            self._log("python-pkcs11 is not installed")
            raise KeySourceError() from None
        try:
            lib = pkcs11.lib(provider)
        except PKCS11Error as exc:
            reason = str(exc).removeprefix(f"OS exception while loading {provider}: ")
            if reason == str(exc):
                self._log(f"C_Initialize for provider {provider} failed: {_rv(exc)}")
            else:
                self._log(f"dlopen {provider} failed: {reason}")
            raise KeySourceError() from None
        except (OSError, RuntimeError) as exc:
            self._log(f"dlopen {provider} failed: {exc}")
            raise KeySourceError() from None
        self._libs[provider] = lib
        return lib

    def _read_slot(self, provider: str, index: int, slot: Any, pin: str | None,
                   keys: list[TokenKey]) -> None:
        from pkcs11 import TokenFlag
        from pkcs11.exceptions import PKCS11Error

        try:
            token = slot.get_token()
            flags = token.flags
        except PKCS11Error as exc:
            self._log(f"C_GetTokenInfo for provider {provider} slot {index} failed: "
                      f"{_rv(exc)}")
            return
        if TokenFlag.TOKEN_INITIALIZED not in flags:
            return
        try:
            mechanisms = frozenset(m.name for m in slot.get_mechanisms() if hasattr(m, "name"))
        except PKCS11Error:
            mechanisms = frozenset()
        info = _Slot(token, str(token.label).rstrip(" "), flags, mechanisms)
        if not self._open_session(info, pin):
            return
        self._slots.append(info)
        before = len(keys)
        self._fetch(info, keys)
        if len(keys) == before and not info.logged_in:
            # some tokens show their keys only after a login
            if not self._login(info):
                self._log("login failed")
                return
            self._fetch(info, keys)

    def _open_session(self, info: _Slot, pin: str | None) -> bool:
        """pkcs11_open_session(): log in now only when a PIN was given (-P)."""
        from pkcs11 import TokenFlag
        from pkcs11.exceptions import PKCS11Error, UserAlreadyLoggedIn

        login = TokenFlag.LOGIN_REQUIRED in info.flags and bool(pin)
        try:
            info.session = info.token.open(rw=True, user_pin=pin if login else None)
        except UserAlreadyLoggedIn:
            info.session = info.token.open(rw=True)
        except PKCS11Error as exc:
            if login and type(exc).__name__ in _RV:
                self._log(f"C_Login failed: {_rv(exc)}")
            else:
                self._log(f"C_OpenSession failed: {_rv(exc)}")
            return False
        info.logged_in = login
        return True

    def _login(self, info: _Slot) -> bool:
        """pkcs11_login_slot(): ask for the PIN (or use the reader's keypad)."""
        from pkcs11 import PROTECTED_AUTH, TokenFlag
        from pkcs11.exceptions import PKCS11Error, UserAlreadyLoggedIn

        pin: Any
        if TokenFlag.PROTECTED_AUTHENTICATION_PATH in info.flags:
            pin = PROTECTED_AUTH
        else:
            pin = self._ask_pin(f"Enter PIN for '{info.label}': ")
            if pin is None:
                return False
        try:
            session = info.token.open(rw=True, user_pin=pin)
        except UserAlreadyLoggedIn:
            session = info.token.open(rw=True)
        except PKCS11Error as exc:
            words = _LOGIN_FAILURES.get(type(exc).__name__, f"error {_rv(exc)}")
            self._log(f"PKCS#11 login failed: {words}")
            return False
        self._close_session(info)
        info.session = session
        info.logged_in = True
        return True

    # -- keys ----------------------------------------------------------------------------

    def _fetch(self, info: _Slot, keys: list[TokenKey]) -> None:
        """pkcs11_fetch_keys() then pkcs11_fetch_certs(); a key already listed is skipped."""
        from pkcs11 import Attribute, ObjectClass
        from pkcs11.exceptions import PKCS11Error

        try:
            objects = list(info.session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
        except PKCS11Error as exc:
            self._log(f"C_FindObjects failed: {_rv(exc)}")
            objects = []
        for obj in objects:
            self._add(info, keys, *self._public_key(obj))
        try:
            certs = list(info.session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}))
        except PKCS11Error as exc:
            self._log(f"C_FindObjects failed: {_rv(exc)}")
            certs = []
        for obj in certs:
            self._add(info, keys, *self._certificate(obj))

    def _add(self, info: _Slot, keys: list[TokenKey], key: PublicKey | None, label: str,
             key_id: bytes) -> None:
        if key is None:
            return
        if any(listed.key.same_key(key) for listed in keys):
            return
        keys.append(TokenKey(key, label, self._signer(info, key, label, key_id)))

    def _public_key(self, obj: Any) -> tuple[PublicKey | None, str, bytes]:
        from pkcs11 import Attribute, KeyType
        from pkcs11.exceptions import PKCS11Error

        from agent.pkcs11 import _ec_public, _text

        try:
            kind = obj[Attribute.KEY_TYPE]
            label = _text(obj[Attribute.LABEL])
            key_id = bytes(obj[Attribute.ID])
            key: PublicKey | None
            if kind == KeyType.RSA:
                n = int.from_bytes(bytes(obj[Attribute.MODULUS]), "big")
                e = int.from_bytes(bytes(obj[Attribute.PUBLIC_EXPONENT]), "big")
                key = RsaPublic(e, n)
            elif kind == KeyType.EC:
                key = _ec_public(obj[Attribute.EC_PARAMS], obj[Attribute.EC_POINT])
            else:
                self._log("skipping unsupported key type")
                key = None
        except PKCS11Error as exc:
            self._log(f"C_GetAttributeValue failed: {_rv(exc)}")
            return None, "", b""
        except SshError:
            key = None
        if key is None:
            self._log("failed to fetch key")
        return key, label, key_id

    def _certificate(self, obj: Any) -> tuple[PublicKey | None, str, bytes]:
        """An X.509 certificate object's key; its label is the subject, as OpenSSH's."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from pkcs11 import Attribute, CertificateType
        from pkcs11.exceptions import PKCS11Error

        try:
            if obj[Attribute.CERTIFICATE_TYPE] != CertificateType.X_509:
                self._log("skipping unsupported certificate type "
                          f"{int(obj[Attribute.CERTIFICATE_TYPE])}")
                return None, "", b""
            key_id = bytes(obj[Attribute.ID])
            der = bytes(obj[Attribute.VALUE])
        except PKCS11Error as exc:
            self._log(f"C_GetAttributeValue failed: {_rv(exc)}")
            return None, "", b""
        key: PublicKey | None = None
        label = "invalid subject"
        try:
            cert = x509.load_der_x509_certificate(der)
            label = _subject_oneline(cert)
            pub = cert.public_key()
            if isinstance(pub, rsa.RSAPublicKey):
                nums = pub.public_numbers()
                key = RsaPublic(nums.e, nums.n)
            elif isinstance(pub, ec.EllipticCurvePublicKey):
                from agent.pkcs11 import _CURVE_NAMES

                curve = _CURVE_NAMES.get(pub.curve.name)
                point = pub.public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint)
                key = EcdsaPublic(curve, point) if curve else None
            else:
                self._log("unknown certificate key type")
        except ValueError:
            self._log("d2i_x509 failed")
        except SshError:
            key = None
        if key is None:
            self._log("failed to fetch key")
        return key, label, key_id

    # -- signing -------------------------------------------------------------------------

    def _signer(self, info: _Slot, key: PublicKey, label: str,
                key_id: bytes) -> Callable[[bytes, str | None], bytes]:
        def sign(data: bytes, algorithm: str | None) -> bytes:
            return self._sign(info, key, label, key_id, data, algorithm)

        return sign

    def _sign(self, info: _Slot, key: PublicKey, label: str, key_id: bytes, data: bytes,
              algorithm: str | None) -> bytes:
        """pkcs11_get_key() then C_Sign: log in first if the token needs it."""
        from pkcs11 import Attribute, ObjectClass, TokenFlag
        from pkcs11.exceptions import PKCS11Error

        from agent.pkcs11 import Pkcs11Error, _Signer
        from agent.pkcs11 import TokenKey as OnToken

        if TokenFlag.LOGIN_REQUIRED in info.flags and not info.logged_in:
            if not self._login(info):
                self._log("login failed")
                self._log("pkcs11_get_key failed")
                raise KeySourceError()
            info.signer = None
        wanted = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: key_id}
        try:
            found = list(info.session.get_objects({**wanted, Attribute.SIGN: True}))
            found = found or list(info.session.get_objects(wanted))
        except PKCS11Error:
            found = []
        if not found:
            self._log("cannot find private key")
            self._log("pkcs11_get_key failed")
            raise KeySourceError()
        if info.signer is None:
            info.signer = _Signer(info.session, info.mechanisms)
        try:
            return OnToken(key, label, "", key_id, found[0], info.signer).sign(data, algorithm)
        except Pkcs11Error as exc:
            self._log(str(exc))
            raise KeySourceError() from None

    # -- the end -------------------------------------------------------------------------

    @staticmethod
    def _close_session(info: _Slot) -> None:
        if info.signer is not None:
            info.signer.close()
            info.signer = None
        elif info.session is not None:
            with contextlib.suppress(Exception):  # the token may already be gone
                info.session.close()
        info.session = None

    def close(self) -> None:
        """Close every session and finalise the libraries (pkcs11_terminate)."""
        for info in self._slots:
            self._close_session(info)
        self._slots.clear()
        for lib in self._libs.values():
            with contextlib.suppress(Exception):
                lib.finalize()
        self._libs.clear()

