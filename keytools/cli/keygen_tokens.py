"""pykeygen -D: the public keys a PKCS#11 provider offers, as ssh-keygen's do_download().

The token is read through the ``pkcs11_keys`` source the running program passes in
(keytools loads no PKCS#11 library itself); no PIN is given, as ssh-keygen gives none.
"""

from __future__ import annotations

from keytools.cli.keysources import KeySourceError, unavailable
from keytools.cli.output import Fatal, out
from keytools.cli.pykeygen import KeygenOptions


def do_download(opts: KeygenOptions) -> int:
    """One ``key label`` line per key, or with -l its ``bits fingerprint TYPE (PKCS11 key)``
    line (-B: bubblebabble, -v: randomart too)."""
    from keytools.fingerprint import fingerprint

    lister = opts.sources.pkcs11_keys
    if lister is None:
        raise Fatal(unavailable("listing PKCS#11 token keys (-D)"), 1)
    assert opts.pkcs11_provider is not None
    try:
        keys = lister(opts.pkcs11_provider, None)
    except KeySourceError:
        keys = []
    if not keys:
        raise Fatal("cannot read public key from pkcs11")
    lines: list[str] = []
    for found in keys:
        key = found.key
        if "-l" not in opts.action:
            lines.append(key.openssh() + (f" {found.comment}" if found.comment else "") + "\n")
            continue
        if "-B" in opts.action:
            from keytools.bubblebabble import bubblebabble

            fp = bubblebabble(key)
        else:
            fp = fingerprint(key, opts.fingerprint_hash)
        lines.append(f"{key.bits} {fp} {key.type_label} (PKCS11 key)\n")
        if opts.verbose:
            from keytools.randomart import randomart

            lines.append(randomart(key, opts.fingerprint_hash) + "\n")
    out("".join(lines))
    return 0
