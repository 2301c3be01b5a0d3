"""Port forwarding specifications (-L/-R/-D/-W and LocalForward/RemoteForward/
DynamicForward), parsed as ssh's readconf.c parse_forward() parses them.

A spec is up to four ':'-separated fields; a field in ``[...]`` is literal (IPv6
addresses), a field containing '/' is a unix socket path, ``\\`` escapes a character.
No protocol imports here: ssh_config.py calls ``apply_forward_keyword`` while reading
files, and ``ForwardOptions`` is what the client acts on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from keytools.errors import SshError

#: ssh's PORT_STREAMLOCAL: the port of a unix-socket end
PORT_STREAMLOCAL = -2
NI_MAXHOST = 1025
PATH_MAX_SUN = 108

#: ssh_config keywords handled here (lower case -> ssh's spelling); "-l", "-r", "-d" and
#: "-w" are the command-line flags, whose argument is one whole spec
FORWARD_KEYWORDS = {k.lower(): k for k in (
    "LocalForward", "RemoteForward", "DynamicForward", "ClearAllForwardings",
    "GatewayPorts", "ExitOnForwardFailure", "-L", "-R", "-D", "-W",
)}
#: the flag -> (keyword its forwards are listed under, its words in ssh's error)
CLI_FLAGS = {"-l": ("localforward", "local"), "-r": ("remoteforward", "remote"),
             "-d": ("dynamicforward", "dynamic"), "-w": ("-w", "stdio")}
_FLAGS = ("clearallforwardings", "gatewayports", "exitonforwardfailure")
_YES_NO = {"yes": True, "true": True, "no": False, "false": False}


class BadForward(SshError):
    """A forwarding spec parse_forward() refuses."""


@dataclass(frozen=True)
class Forward:
    """One forward (struct Forward). For -D, ``connect_host`` is "socks"."""

    listen_host: str | None = None
    listen_port: int = 0
    listen_path: str | None = None
    connect_host: str | None = None
    connect_port: int = 0
    connect_path: str | None = None

    @property
    def dynamic(self) -> bool:
        return self.connect_host == "socks" and self.connect_path is None \
            and self.connect_port == 0

    def connect_text(self) -> str:
        if self.connect_path is not None:
            return self.connect_path
        return f"{self.connect_host}:{self.connect_port}"

    def dump(self, keyword: str) -> str:
        """ssh -G's dump_cfg_forwards() line."""
        words = [keyword]
        if self.listen_port == PORT_STREAMLOCAL:
            words.append(str(self.listen_path))
        elif self.listen_host is None:
            words.append(str(self.listen_port))
        else:
            words.append(f"[{self.listen_host}]:{self.listen_port}")
        if keyword != "dynamicforward":
            if self.connect_port == PORT_STREAMLOCAL:
                words.append(str(self.connect_path))
            elif self.connect_host is None:
                words.append(str(self.connect_port))
            else:
                words.append(f"[{self.connect_host}]:{self.connect_port}")
        return " ".join(words)


@dataclass(frozen=True)
class ForwardOptions:
    """The forwarding options the client acts on, after ClearAllForwardings."""

    local: tuple[Forward, ...] = ()  # -L and -D (dynamic ones have connect_host "socks")
    remote: tuple[Forward, ...] = ()
    gateway_ports: bool = False
    exit_on_forward_failure: bool = False
    clear_all: bool = False
    #: -W host:port
    stdio_host: str | None = None
    stdio_port: int = 0


def _a2port(text: str) -> int:
    """a2port(): 0..65535, -1 if not a port."""
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > 65535:
        return -1
    return int(text)


def _fields(spec: str) -> list[tuple[str, bool]] | None:
    """parse_fwd_field() repeatedly: (text, is_path) for up to four fields."""
    out: list[tuple[str, bool]] = []
    i, n = 0, len(spec)
    while i < n and len(out) < 4:
        if spec[i] == "[":
            end = spec.find("]", i + 1)
            if end < 0 or (end + 1 < n and spec[end + 1] != ":"):
                return None
            text = spec[i + 1:end]
            out.append((text, "/" in text))
            i = end + 2
            continue
        chars: list[str] = []
        is_path = False
        while i < n:
            ch = spec[i]
            if ch == "\\":
                if i + 1 >= n:
                    return None
                chars.append(spec[i + 1])
                i += 2
                continue
            if ch == ":":
                i += 1
                break
            if ch == "/":
                is_path = True
            chars.append(ch)
            i += 1
        out.append(("".join(chars), is_path))
    if i < n:
        return None  # trailing garbage
    return out


def _dollar_expand(spec: str) -> str:
    """${VAR} from the environment, as dollar_expand(); unknown variables are errors."""
    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            raise BadForward(f"env var ${{{m.group(1)}}} has no value")
        return value

    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", sub, spec)


def parse_forward(spec: str, *, dynamic: bool, remote: bool) -> Forward:
    """parse_forward(); BadForward when ssh's returns 0."""
    fields = _fields(_dollar_expand(spec).lstrip(" \t"))
    if not fields:
        raise BadForward(spec)
    args = [f[0] for f in fields]
    paths = [f[1] for f in fields]
    f = Forward()
    count = len(fields)
    if count == 1:
        f = Forward(listen_path=args[0], listen_port=PORT_STREAMLOCAL, connect_host="socks") \
            if paths[0] else Forward(listen_port=_a2port(args[0]), connect_host="socks")
    elif count == 2:
        if paths[0] and paths[1]:
            f = Forward(listen_path=args[0], listen_port=PORT_STREAMLOCAL,
                        connect_path=args[1], connect_port=PORT_STREAMLOCAL)
        elif paths[1]:
            f = Forward(listen_port=_a2port(args[0]), connect_path=args[1],
                        connect_port=PORT_STREAMLOCAL)
        else:
            f = Forward(listen_host=args[0], listen_port=_a2port(args[1]),
                        connect_host="socks")
    elif count == 3:
        if paths[0]:
            f = Forward(listen_path=args[0], listen_port=PORT_STREAMLOCAL,
                        connect_host=args[1], connect_port=_a2port(args[2]))
        elif paths[2]:
            f = Forward(listen_host=args[0], listen_port=_a2port(args[1]),
                        connect_path=args[2], connect_port=PORT_STREAMLOCAL)
        else:
            f = Forward(listen_port=_a2port(args[0]), connect_host=args[1],
                        connect_port=_a2port(args[2]))
    else:
        f = Forward(listen_host=args[0], listen_port=_a2port(args[1]),
                    connect_host=args[2], connect_port=_a2port(args[3]))
    if dynamic:
        if count not in (1, 2):
            raise BadForward(spec)
    else:
        if count not in (3, 4) and f.connect_path is None and f.listen_path is None:
            raise BadForward(spec)
        if f.connect_port <= 0 and f.connect_path is None:
            raise BadForward(spec)
    if (f.listen_port < 0 and f.listen_path is None) or (not remote and f.listen_port == 0):
        raise BadForward(spec)
    for host in (f.connect_host, f.listen_host):
        if host is not None and len(host) >= NI_MAXHOST:
            raise BadForward(spec)
    for path in (f.connect_path, f.listen_path):
        if path is not None and len(path) >= PATH_MAX_SUN:
            raise BadForward(spec)
    return f


def parse_remote_forward(spec: str) -> Forward:
    """-R: a static forward, or failing that a dynamic (SOCKS) one."""
    try:
        return parse_forward(spec, dynamic=False, remote=True)
    except BadForward:
        return parse_forward(spec, dynamic=True, remote=True)


def _is_dynamic_remote(spec: str) -> bool:
    try:
        parse_forward(spec, dynamic=False, remote=True)
    except BadForward:
        return True
    return False


def check_cli_forward(flag: str, spec: str) -> None:
    """ssh.c's checks of -L/-R/-D/-W ("Bad local forwarding specification 'x'")."""
    flag = flag.lower()
    try:
        if flag == "-r":
            parse_remote_forward(spec)
        else:
            parse_forward(spec, dynamic=flag in ("-d", "-w"), remote=False)
    except BadForward:
        raise BadForward(f"Bad {CLI_FLAGS[flag][1]} forwarding specification '{spec}'") \
            from None


# -- ssh_config -----------------------------------------------------------------------

def apply_forward_keyword(values: dict[str, list[str]], key: str, args: list[str],
                          where: str) -> None:
    """One forwarding line of ssh_config (or -o): forwards accumulate (as canonical
    specs, checked here), the flags keep their first value. ConfigError as ssh words it."""
    from protocol.ssh_config import ConfigError

    if key in _FLAGS:
        value = args[0].lower()
        if value not in _YES_NO:
            raise ConfigError(f"{where}: unsupported option \"{args[0]}\".")
        values.setdefault(key, ["yes" if _YES_NO[value] else "no"])
        return
    if key in CLI_FLAGS:
        check_cli_forward(key, args[0])
        target = CLI_FLAGS[key][0]
        if key == "-w":
            values.setdefault(target, [args[0]])
        else:
            dynamic = key == "-d" or (key == "-r" and _is_dynamic_remote(args[0]))
            values.setdefault(target, []).append(("D " if dynamic else "S ") + args[0])
        return
    remote = key == "remoteforward"
    dynamic = key == "dynamicforward"
    spec = args[0]
    if not dynamic:
        if len(args) < 2 or not args[1]:
            if not remote:
                raise ConfigError(f"{where}: Missing target argument.")
            dynamic = True
        else:
            spec = f"{args[0]}:{args[1]}"
    try:
        parse_forward(spec, dynamic=dynamic, remote=remote)
    except BadForward:
        raise ConfigError(f"{where}: Bad forwarding specification.") from None
    values.setdefault(key, []).append(("D " if dynamic else "S ") + spec)


def _configured(values: dict[str, list[str]], key: str) -> list[Forward]:
    out: list[Forward] = []
    for item in values.get(key, []):
        dynamic = item.startswith("D ")
        forward = parse_forward(item[2:], dynamic=dynamic, remote=key == "remoteforward")
        if forward not in out:  # add_local_forward()/add_remote_forward() skip duplicates
            out.append(forward)
    return out


def forward_options(values: dict[str, list[str]]) -> ForwardOptions:
    """The resolved options (fill_default_options: ClearAllForwardings drops them all)."""
    def flag(key: str) -> bool:
        return values.get(key, ["no"])[:1] == ["yes"]

    opts = ForwardOptions(
        local=tuple(_configured(values, "localforward") + _configured(values, "dynamicforward")),
        remote=tuple(_configured(values, "remoteforward")),
        gateway_ports=flag("gatewayports"), exit_on_forward_failure=flag("exitonforwardfailure"),
        clear_all=flag("clearallforwardings"),
    )
    stdio = values.get("-w")
    if stdio:
        w = parse_forward(stdio[0], dynamic=True, remote=False)
        opts = replace(opts, stdio_host=w.listen_path if w.listen_path else w.listen_host,
                       stdio_port=w.listen_port)
    if opts.clear_all:
        opts = replace(opts, local=(), remote=())
    return opts


def dump_forwards(opts: ForwardOptions) -> list[str]:
    """ssh -G's lines for the forwarding options, in its order."""
    lines = [f"clearallforwardings {'yes' if opts.clear_all else 'no'}",
             f"exitonforwardfailure {'yes' if opts.exit_on_forward_failure else 'no'}",
             f"gatewayports {'yes' if opts.gateway_ports else 'no'}"]
    lines += [f.dump("dynamicforward") for f in opts.local
              if f.connect_host is None or f.connect_host == "socks"]
    lines += [f.dump("localforward") for f in opts.local
              if f.connect_host is None or f.connect_host != "socks"]
    lines += [f.dump("remoteforward") for f in opts.remote]
    return lines


__all__ = ["FORWARD_KEYWORDS", "PORT_STREAMLOCAL", "BadForward", "Forward", "ForwardOptions",
           "apply_forward_keyword", "dump_forwards", "forward_options",
           "parse_forward", "parse_remote_forward"]
