"""pykeygen -D: listing a PKCS#11 token's public keys (not implemented yet)."""

from __future__ import annotations

from keytools.cli.output import PROGNAME, Fatal
from keytools.cli.pykeygen import KeygenOptions


def do_download(opts: KeygenOptions) -> int:
    raise Fatal(f"{PROGNAME}: listing PKCS#11 token keys (-D) is not implemented yet", 1)
