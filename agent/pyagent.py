"""pyagent: the ssh-agent command (flags, output and process behaviour as OpenSSH's).

``eval $(pyagent)`` starts a background agent and prints the shell commands that point
SSH_AUTH_SOCK and SSH_AGENT_PID at it; ``pyagent command args`` runs the command with
them set; ``-k`` kills the agent named by SSH_AGENT_PID. The default socket lives under
``~/.ssh/agent/`` as OpenSSH 10.1 puts it.
"""

from __future__ import annotations

import contextlib
import getopt
import hashlib
import os
import resource
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from agent.keyring import DEFAULT_ALLOWED_PROVIDERS

if TYPE_CHECKING:
    from agent.interface import SmartcardBackend

USAGE = """\
usage: pyagent [-c | -s] [-Dd] [-a bind_address] [-E fingerprint_hash]
               [-O option] [-P allowed_providers] [-t life]
       pyagent [-a bind_address] [-E fingerprint_hash] [-O option]
               [-P allowed_providers] [-t life] command [arg ...]
       pyagent [-c | -s] -k
"""
_PRESENTATION = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#: misc-agent.c: sockets are s.<hostname hash>.agent.<random>, both 10 characters.
_HASH_LEN = 10
_STALE_AGE = 3600
#: ssh-agent checks every 10 s that the parent of ``ssh-agent command`` still lives.
PARENT_CHECK = 1.0


class _Usage(Exception):
    pass


class _Fatal(Exception):
    def __init__(self, message: str, code: int = 255) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class AgentOptions:
    csh: bool = False
    sh: bool = False
    foreground: bool = False  # -D
    debug: bool = False  # -d
    kill: bool = False
    bind_address: str | None = None
    lifetime: int | None = None
    fingerprint_hash: str = "sha256"
    allowed_providers: str | None = None
    restrict_websafe: bool = True
    allow_remote_pkcs11: bool = False
    command: list[str] = field(default_factory=list)


def parse_args(argv: list[str]) -> AgentOptions:
    """ssh-agent's getopt("cDdksE:a:O:P:t:") and its consistency checks."""
    from agent.pyadd_time import convtime
    from keytools.errors import InvalidArgument
    from keytools.fingerprint import parse_hash_name

    try:
        opts, args = getopt.getopt(argv, "cDdksE:a:O:P:t:")
    except getopt.GetoptError as exc:
        option = exc.opt
        if exc.msg.endswith("requires argument"):
            print(f"option requires an argument -- {option}", file=sys.stderr)
        else:
            print(f"unknown option -- {option}", file=sys.stderr)
        raise _Usage() from None
    o = AgentOptions()
    for flag, value in opts:
        if flag == "-E":
            try:
                o.fingerprint_hash = parse_hash_name(value)
            except InvalidArgument:
                raise _Fatal(f'Invalid hash algorithm "{value}"') from None
        elif flag == "-c":
            if o.sh:
                raise _Usage()
            o.csh = True
        elif flag == "-s":
            if o.csh:
                raise _Usage()
            o.sh = True
        elif flag == "-k":
            o.kill = True
        elif flag == "-O":
            if value == "no-restrict-websafe":
                o.restrict_websafe = False
            elif value == "allow-remote-pkcs11":
                o.allow_remote_pkcs11 = True
            else:
                raise _Fatal("Unknown -O option")
        elif flag == "-P":
            if o.allowed_providers is not None:
                raise _Fatal("-P option already specified")
            o.allowed_providers = value
        elif flag in ("-d", "-D"):
            if o.debug or o.foreground:
                raise _Usage()
            o.debug, o.foreground = flag == "-d", flag == "-D"
        elif flag == "-a":
            o.bind_address = value
        elif flag == "-t":
            life = convtime(value)
            if life is None:
                print("Invalid lifetime", file=sys.stderr)
                raise _Usage()
            o.lifetime = life
    o.command = args
    if args and (o.csh or o.kill or o.sh or o.debug or o.foreground):
        raise _Usage()
    if not args and not o.csh and not o.sh and os.environ.get("SHELL", "").endswith("csh"):
        o.csh = True
    return o


def _set_format(o: AgentOptions, name: str, value: str) -> str:
    return f"setenv {name} {value};\n" if o.csh else f"{name}={value}; export {name};\n"


def kill_agent(o: AgentOptions) -> int:
    """-k: SIGTERM the agent in $SSH_AGENT_PID and print the commands that unset it."""
    text = os.environ.get("SSH_AGENT_PID")
    if text is None:
        print("SSH_AGENT_PID not set, cannot kill agent", file=sys.stderr)
        return 1
    pid = int(text) if text.isdigit() and len(text) < 11 else -1
    if not 2 <= pid <= 2**31 - 1:
        reason = "invalid" if pid < 0 else "too small" if pid < 2 else "too large"
        print(f'SSH_AGENT_PID="{text}", which is not a good PID: {reason}', file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        print(f"kill: {exc.strerror}", file=sys.stderr)
        return 1
    unset = "unsetenv" if o.csh else "unset"
    sys.stdout.write(f"{unset} SSH_AUTH_SOCK;\n{unset} SSH_AGENT_PID;\n"
                     f"echo Agent pid {pid} killed;\n")
    return 0


def hostname_hash(length: int = _HASH_LEN) -> str:
    """misc-agent.c's hostname_hash: SHA-512 of the host name, one letter per byte."""
    digest = hashlib.sha512(socket.gethostname().encode()).digest()
    return "".join(_PRESENTATION[b % len(_PRESENTATION)] for b in digest[:length])


def home_directory() -> str:
    home = os.environ.get("HOME")
    if home:
        return home
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def cleanup_stale(directory: str) -> None:
    """Remove this host's sockets older than an hour that nobody listens on."""
    import stat

    prefix = f"s.{hostname_hash()}."
    try:
        names = os.listdir(directory)
    except OSError:
        return
    limit = time.time() - _STALE_AGE
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISSOCK(st.st_mode) or st.st_mtime > limit or not name.startswith(prefix):
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            try:
                probe.connect(path)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(path)


def create_listener(o: AgentOptions) -> tuple[socket.socket, str]:
    """The listening socket and its path: -a's, or a fresh one under ~/.ssh/agent/."""
    from agent.daemon import bind_socket

    if o.bind_address is not None:
        try:
            return bind_socket(o.bind_address), o.bind_address
        except OSError as exc:
            raise _Fatal(f"unix_listener: cannot bind to path {o.bind_address}: "
                         f"{exc.strerror or exc}", 1) from None
    home = home_directory()
    directory = os.path.join(home, ".ssh", "agent")
    for path in (os.path.join(home, ".ssh"), directory):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _Fatal(f"mkdir {path}: {exc.strerror}", 1) from None
    cleanup_stale(directory)
    stem = os.path.join(directory, f"s.{hostname_hash()}.agent.")
    for _ in range(100):
        path = stem + "".join(secrets.choice(_PRESENTATION) for _ in range(10))
        try:
            return bind_socket(path), path
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno == 98:  # EADDRINUSE: try another name
                continue
            raise _Fatal(f'bind "{path}": {exc.strerror or exc}', 1) from None
    raise _Fatal("cannot create agent socket", 1)


def _smartcard_backend() -> SmartcardBackend | None:
    try:
        from agent.pkcs11 import Pkcs11Backend
    except ImportError:
        return None
    return Pkcs11Backend()


def run_agent(o: AgentOptions, listener: socket.socket, path: str, parent: int | None) -> int:
    """Serve until a signal, or until ``parent`` (for ``pyagent command``) is gone."""
    from agent.daemon import AgentServer
    from agent.keyring import KeyRing

    def log(text: str) -> None:
        if o.debug:
            sys.stderr.write(f"debug1: {text}\r\n")
            sys.stderr.flush()

    def cleanup(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os._exit(2)

    signal.signal(signal.SIGTERM, cleanup)
    signal.signal(signal.SIGHUP, cleanup)
    signal.signal(signal.SIGINT, cleanup if (o.debug or o.foreground) else signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    ring = KeyRing(lifetime=o.lifetime, fingerprint_hash=o.fingerprint_hash,
                   smartcard=_smartcard_backend(),
                   allowed_providers=o.allowed_providers or DEFAULT_ALLOWED_PROVIDERS,
                   restrict_websafe=o.restrict_websafe,
                   allow_remote_pkcs11=o.allow_remote_pkcs11)
    server = AgentServer(ring, listener, log=log if o.debug else None)
    last_check = [time.monotonic()]

    def parent_alive() -> bool:
        if parent is None or time.monotonic() - last_check[0] < PARENT_CHECK:
            return True
        last_check[0] = time.monotonic()
        return os.getppid() == parent

    try:
        server.serve_forever(parent_alive)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return 2


def _detach() -> None:
    """The agent child: own session, cwd /, stdio on /dev/null, no core dumps."""
    os.setsid()
    os.chdir("/")
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str] | None = None) -> int:
    from agent.daemon import set_non_dumpable

    args = sys.argv[1:] if argv is None else argv
    set_non_dumpable()
    try:
        o = parse_args(args)
        if o.kill:
            return kill_agent(o)
        listener, path = create_listener(o)
    except _Usage:
        sys.stderr.write(USAGE)
        return 1
    except _Fatal as exc:
        sys.stderr.write(f"{exc}\r\n")
        return exc.code
    if o.debug or o.foreground:
        sys.stdout.write(_set_format(o, "SSH_AUTH_SOCK", path))
        sys.stdout.write(f"echo Agent pid {os.getpid()};\n")
        sys.stdout.flush()
        return run_agent(o, listener, path, None)
    parent_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid != 0:
        listener.close()
        if not o.command:
            sys.stdout.write(_set_format(o, "SSH_AUTH_SOCK", path))
            sys.stdout.write(_set_format(o, "SSH_AGENT_PID", str(pid)))
            sys.stdout.write(f"echo Agent pid {pid};\n")
            sys.stdout.flush()
            return 0
        os.environ["SSH_AUTH_SOCK"] = path
        os.environ["SSH_AGENT_PID"] = str(pid)
        try:
            os.execvp(o.command[0], o.command)
        except OSError as exc:
            sys.stderr.write(f"{o.command[0]}: {exc.strerror}\n")
            return 1
    try:
        _detach()
        code = run_agent(o, listener, path, parent_pid if o.command else None)
    except BaseException:
        code = 1
    os._exit(code)


def pyagent_main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(pyagent_main())
