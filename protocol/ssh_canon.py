"""CanonicalizeHostname, as ssh.c's resolve_canonicalize (the basics: no CNAME rules).

With CanonicalizeHostname yes or always, an address literal becomes its canonical form
(127.1 -> 127.0.0.1); a name with at most CanonicalizeMaxDots dots (for a direct
connection, or any with always) is tried with each of CanonicalDomains; the first that resolves
becomes the host, and the configuration files are read again (Host patterns then see the
new name; Match canonical holds). With CanonicalizeFallbackLocal no, a name that
resolves under no domain is fatal.
"""

from __future__ import annotations

import socket

from protocol.ssh_config import ConfigContext, ConfigError, SshConfig, expand_hostname

_MODES = {"no": "false", "false": "false", "yes": "true", "true": "true", "always": "always"}


def mode(config: SshConfig) -> str:
    return _MODES.get((config.get("canonicalizehostname") or "no").lower(), "false")


def _address(host: str) -> str | None:
    """The canonical text of an address literal (as getaddrinfo's numeric form)."""
    try:
        infos = socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM, 0,
                                   socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        return None
    for info in infos:
        address = info[4][0]
        if isinstance(address, str):
            return address
    return None


def _resolves(name: str) -> bool:
    try:
        socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False
    return True


def canonicalize(config: SshConfig, ctx: ConfigContext, host: str) -> bool:
    """After the first reading: the host becomes the HostName (an address literal in its
    canonical form, always, as ssh; a name lower-cased, and completed with
    CanonicalDomains when canonicalization applies). ``ctx.host`` (what Host patterns
    match on a second reading) and HostName are updated; True when canonicalization is on,
    so the files must be read again."""
    # ssh settles these before canonicalizing: a second reading cannot change them.
    for key, default in (("canonicalizehostname", "no"), ("canonicalizemaxdots", "1"),
                         ("canonicalizefallbacklocal", "yes")):
        config.values.setdefault(key, [default])
    how = mode(config)
    name = expand_hostname(config.get("hostname") or host, host)
    direct = (config.get("proxycommand") or "none").lower() == "none" \
        and config.get("proxyjump") is None
    address = _address(name)
    if address is not None:
        name = address
    else:
        name = name.lower()
        if how != "false" and (direct or how == "always"):
            name = _with_domain(config, name) or name
    ctx.host = name
    config.values["hostname"] = [name.replace("%", "%%")]
    return how != "false"


def _with_domain(config: SshConfig, name: str) -> str | None:
    max_dots = config.get("canonicalizemaxdots") or "1"
    if name.count(".") > int(max_dots):
        return None
    for domain in config.args("canonicaldomains") or []:
        if domain.lower() == "none":
            break
        if _resolves(f"{name}.{domain}."):
            return f"{name}.{domain}"
    if (config.get("canonicalizefallbacklocal") or "yes").lower() in ("no", "false"):
        raise ConfigError(f"ssh: Could not resolve host \"{name}\"")
    return None


def validate(key: str, args: list[str], where: str) -> None:
    value = args[0]
    if key == "canonicalizehostname" and value.lower() not in _MODES:
        raise ConfigError(f"{where}: unsupported option \"{value}\".")
    if key == "canonicalizefallbacklocal" and value.lower() not in ("yes", "no", "true",
                                                                     "false"):
        raise ConfigError(f"{where}: unsupported option \"{value}\".")
    if key == "canonicalizemaxdots" and not value.isdigit():
        raise ConfigError(f"{where}: invalid integer value.")


def dump_lines(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """ssh -G's lines for these keywords."""
    def first(key: str, default: str) -> str:
        got = values.get(key)
        return got[0] if got else default

    fallback = first("canonicalizefallbacklocal", "yes").lower()
    domains = values.get("canonicaldomains") or ["none"]
    return {
        "canon_first": [
            f"canonicalizefallbacklocal {'no' if fallback in ('no', 'false') else 'yes'}",
            f"canonicalizehostname {_MODES.get(first('canonicalizehostname', 'no').lower())}"],
        "canon_dots": [f"canonicalizemaxdots {first('canonicalizemaxdots', '1')}"],
        "canon_domains": [f"canonicaldomains {' '.join(domains)}"],
    }
