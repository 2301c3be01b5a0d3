"""AuthorizedPrincipalsFile / AuthorizedPrincipalsCommand: which certificate principals
may log in as a user (auth2-pubkey.c's match_principals_*).

Each line is ``[authorized_keys options] principal``; ``#`` comments and blank lines
are skipped. A line naming one of the certificate's principals accepts it, and its
options (``command=``, ``from=``, ...) apply to the session as authorized_keys options do.
"""

from __future__ import annotations

import logging

from keytools.authorized_keys import KeyOptions, parse_options
from keytools.certificate import Certificate
from keytools.errors import SshError

log = logging.getLogger("pyssh.sshd")


def match_principals(text: str, cert: Certificate, where: str) -> KeyOptions | None:
    """The options of the first line naming one of ``cert``'s principals, else None."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        options_text = ""
        cut = max(line.rfind(" "), line.rfind("\t"))
        if cut >= 0:
            options_text = line[:cut].strip(" \t")
            line = line[cut + 1 :]
        try:
            options, rest = parse_options(options_text) if options_text else (KeyOptions(), "")
        except SshError as exc:
            log.debug("%s:%d: bad principals options: %s", where, number, exc)
            continue
        if rest.strip():
            log.debug("%s:%d: bad principals options: trailing garbage", where, number)
            continue
        if line in cert.principals:
            log.debug("%s:%d: matched principal \"%s\"", where, number, line)
            return options
    return None
