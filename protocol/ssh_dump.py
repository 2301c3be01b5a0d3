"""``pyssh -G``: the resolved configuration as ``ssh -G`` prints it, for the keywords
pyssh supports, in ssh's order and spelling."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.forward_spec import dump_forwards, forward_options

if TYPE_CHECKING:
    from protocol.ssh_config import Resolved


def dump(r: Resolved) -> str:
    """``ssh -G`` lines for the keys pyssh supports, in ssh's order and spelling."""
    level = {"DEBUG1": "DEBUG", "QUIET": "SILENT"}.get(r.log_level, r.log_level)
    from protocol.ssh_login import dump_lines

    auth = dump_lines(r)
    fwd = dump_forwards(forward_options(r.values))  # protocol/forward_spec.py
    from protocol.session_options import dump_lines as session_lines

    sess = session_lines(r.values)
    from protocol.ssh_main import client_algorithms

    algs = {k: f"{k} {','.join(v)}" for k, v in client_algorithms(r).items()}
    forward_agent = r.forward_agent_path or (r.values.get("forwardagent") or ["no"])[0]
    lines = [f"host {r.host}", f"user {r.user}", f"hostname {r.hostname}", f"port {r.port}",
             f"addressfamily {r.address_family}",
             f"batchmode {'yes' if r.batch_mode else 'no'}",
             *auth.get("canon_first", []),
             *fwd[:3],
             *auth.get("hashknownhosts", []),
             f"identitiesonly {'yes' if r.identities_only else 'no'}",
             *auth.get("kbdinteractiveauthentication", []),
             *auth.get("passwordauthentication", []),
             *auth.get("pubkeyauthentication", []),
             *sess["tty"],
             f"stricthostkeychecking {r.strict_host_key_checking}",
             *sess["tcpkeepalive"],
             *auth.get("updatehostkeys", []),
             *auth.get("canon_dots", []),
             *auth.get("numberofpasswordprompts", []),
             *sess["serveralive"],
             *([f"bindaddress {r.bind_address}"] if r.bind_address is not None else []),
             algs["ciphers"], algs["hostkeyalgorithms"],
             *([f"identityagent {r.identity_agent}"] if r.identity_agent is not None else []),
             *auth.get("kbdinteractivedevices", []),
             algs["kexalgorithms"], algs["casignaturealgorithms"],
             f"loglevel {level}", algs["macs"],
             *auth.get("preferredauthentications", []),
             algs["pubkeyacceptedalgorithms"]]
    lines += fwd[3:]
    lines += [f"identityfile {f}" for f in r.identity_files]
    lines += auth.get("canon_domains", [])
    lines += auth.get("certificatefile", [])
    lines += [f"globalknownhostsfile {' '.join(r.global_known_hosts)}",
              f"userknownhostsfile {' '.join(r.user_known_hosts)}",
              *sess["env"],
              *auth.get("addkeystoagent", []),
              f"forwardagent {forward_agent}",
              f"connecttimeout {'none' if r.connect_timeout is None else r.connect_timeout}",
              *sess["escapechar"]]
    lines += auth.get("proxy", [])
    return "".join(line + "\n" for line in lines)


#: The keywords ``dump`` prints (what tests compare with ``ssh -G``).
DUMPED_KEYS = ("host", "user", "hostname", "port", "addressfamily", "batchmode",
               "requesttty", "sessiontype", "stdinnull", "forkafterauthentication",
               "tcpkeepalive", "serveralivecountmax", "serveraliveinterval", "sendenv",
               "setenv", "escapechar",
               "identitiesonly", "stricthostkeychecking", "loglevel", "identityfile",
               "globalknownhostsfile", "userknownhostsfile", "connecttimeout",
               "hashknownhosts", "kbdinteractiveauthentication", "passwordauthentication",
               "pubkeyauthentication", "updatehostkeys", "numberofpasswordprompts",
               "bindaddress", "identityagent", "preferredauthentications", "certificatefile",
               "addkeystoagent", "proxycommand", "proxyjump", "canonicalizefallbacklocal",
               "canonicalizehostname", "canonicalizemaxdots", "canonicaldomains",
               "kbdinteractivedevices",
               "clearallforwardings", "exitonforwardfailure", "gatewayports", "dynamicforward",
               "localforward", "remoteforward", "forwardagent", "ciphers", "hostkeyalgorithms",
               "kexalgorithms", "casignaturealgorithms", "macs", "pubkeyacceptedalgorithms")
