"""The sshd_config keyword tables: the names pysshd implements, those OpenSSH knows that
pysshd accepts but ignores, the deprecated and built-without ones, aliases, and the
keywords refused inside a Match block.

Data only, apart from the parser, so which names sshd recognises can be read (and tested
against the installed sshd and man/pysshd_config.5) on its own.
"""

from __future__ import annotations

from protocol.kex import kexinit as _alg
from protocol.penalty import LIMIT_KEYWORDS

#: keywords pysshd implements, in the order ``-T`` prints them (sshd's order)
SUPPORTED = (
    "Port", "ListenAddress", "AddressFamily", "LoginGraceTime", "MaxAuthTries",
    "PubkeyAuthentication", "PasswordAuthentication", "PidFile", "TrustedUserCAKeys",
    "RevokedKeys", "LogLevel",
    "AuthorizedKeysFile", "HostKey", "AcceptEnv",
    "Ciphers", "MACs", "HostKeyAgent", "KexAlgorithms", "CASignatureAlgorithms",
    "HostKeyAlgorithms", "PubkeyAcceptedAlgorithms", "HostCertificate",
    # authentication policy (protocol/server_auth.py, protocol/password.py)
    "UsePAM", "PermitRootLogin", "KbdInteractiveAuthentication", "StrictModes",
    "PermitEmptyPasswords", "Banner", "ForceCommand", "AuthorizedPrincipalsFile",
    "AuthorizedKeysCommand", "AuthorizedKeysCommandUser", "AuthorizedPrincipalsCommand",
    "AuthorizedPrincipalsCommandUser", "AllowUsers", "DenyUsers", "AllowGroups",
    "DenyGroups", "AuthenticationMethods", "Match", "Include",
)
#: sshd_config keywords of OpenSSH 9.x/10.x (and Debian's) that pysshd accepts but ignores
KNOWN_UNSUPPORTED = (
    "AddressFamily", "AllowAgentForwarding", "AllowGroups", "AllowStreamLocalForwarding",
    "AllowTcpForwarding", "AllowUsers", "AuthenticationMethods", "AuthorizedKeysCommand",
    "AuthorizedKeysCommandUser", "AuthorizedPrincipalsCommand",
    "AuthorizedPrincipalsCommandUser", "AuthorizedPrincipalsFile", "Banner",
    "CASignatureAlgorithms", "ChallengeResponseAuthentication", "ChannelTimeout",
    "ChrootDirectory", "Ciphers", "ClientAliveCountMax", "ClientAliveInterval", "Compression",
    "DebianBanner", "DenyGroups", "DenyUsers", "DisableForwarding", "ExposeAuthInfo",
    "FingerprintHash", "ForceCommand", "GatewayPorts", "GSSAPIAuthentication",
    "GSSAPICleanupCredentials", "GSSAPIKexAlgorithms", "GSSAPIKeyExchange",
    "GSSAPIStoreCredentialsOnRekey", "GSSAPIStrictAcceptorCheck", "HostbasedAcceptedAlgorithms",
    "HostbasedAcceptedKeyTypes", "HostbasedAuthentication", "HostbasedUsesNameFromPacketOnly",
    "HostCertificate", "HostKeyAgent", "HostKeyAlgorithms", "IgnoreRhosts",
    "IgnoreUserKnownHosts", "Include", "IPQoS", "KbdInteractiveAuthentication",
    "KerberosAuthentication", "KerberosGetAFSToken", "KerberosOrLocalPasswd",
    "KerberosTicketCleanup", "KexAlgorithms", "LogVerbose", "MACs", "Match", "MaxSessions",
    "MaxStartups", "ModuliFile", "PermitEmptyPasswords", "PermitListen", "PermitOpen",
    "PermitRootLogin", "PermitTTY", "PermitTunnel", "PermitUserEnvironment", "PermitUserRC",
    "PerSourceMaxStartups", "PerSourceNetBlockSize", "PerSourcePenalties",
    "PerSourcePenaltyExemptList", "PrintLastLog", "PrintMotd", "PubkeyAcceptedAlgorithms",
    "PubkeyAcceptedKeyTypes", "PubkeyAuthOptions", "RDomain", "RefuseConnection", "RekeyLimit",
    "RequiredRSASize", "SecurityKeyProvider", "SetEnv", "SshdAuthPath", "SshdSessionPath",
    "StreamLocalBindMask", "StreamLocalBindUnlink", "StrictModes", "Subsystem",
    "SyslogFacility", "TCPKeepAlive", "KeepAlive", "UnusedConnectionTimeout",
    "UseDNS", "UsePAM", "VersionAddendum", "X11DisplayOffset", "X11Forwarding",
    "X11UseLocalhost", "XAuthLocation", "GSSAPICleanupCreds",
)
#: keywords sshd still recognises only to say they are gone ("Deprecated option X")
DEPRECATED = (
    "UsePrivilegeSeparation", "RSAAuthentication", "RhostsRSAAuthentication",
    "RhostsAuthentication", "UseLogin", "KeyRegenerationInterval", "ServerKeyBits",
    "PAMAuthenticationViaKbdInt", "VerifyReverseMapping", "ReverseMappingCheck",
    "AuthorizedKeysFile2", "CheckMail", "PermitBlacklistedKeys",
)
#: keywords sshd knows but was built without ("Unsupported option X")
BUILT_WITHOUT = (
    "AFSTokenPassing", "KerberosTGTPassing", "GSSAPIUseSessionCredCache",
    "GSSUseSessionCCache",
)
#: keywords sshd ignores without a word (lower case)
IGNORED = ("protocol",)
#: other names sshd accepts for a keyword
ALIASES = {
    "challengeresponseauthentication": "kbdinteractiveauthentication",
    "skeyauthentication": "kbdinteractiveauthentication",
    "dsaauthentication": "pubkeyauthentication", "hostdsakey": "hostkey",
    "keepalive": "tcpkeepalive", "hostbasedacceptedkeytypes": "hostbasedacceptedalgorithms",
    "gssapicleanupcreds": "gssapicleanupcredentials",
}
#: keywords not allowed inside a Match block (servconf.c's SSHCFG_GLOBAL ones; Subsystem
#: is allowed since OpenSSH 9.4, whose behaviour pysshd follows)
GLOBAL_ONLY = frozenset(k.lower() for k in (
    "AddressFamily", "AFSTokenPassing", "CheckMail", "Ciphers", "Compression", "DebianBanner",
    "DSAAuthentication", "FingerprintHash", "GSSAPICleanupCredentials", "GSSAPICleanupCreds",
    "GSSAPIKexAlgorithms", "GSSAPIKeyExchange", "GSSAPIStoreCredentialsOnRekey",
    "GSSAPIStrictAcceptorCheck", "GSSAPIUseSessionCredCache", "GSSUseSessionCCache",
    "HostCertificate", "HostDSAKey", "HostKey", "HostKeyAgent", "HostKeyAlgorithms",
    "IgnoreUserKnownHosts", "KeepAlive", "KerberosGetAFSToken", "KerberosOrLocalPasswd",
    "KerberosTGTPassing", "KerberosTicketCleanup", "KexAlgorithms", "KeyRegenerationInterval",
    "ListenAddress", "LoginGraceTime", "MACs", "MaxStartups", "ModuliFile",
    "PAMAuthenticationViaKbdInt", "PermitBlacklistedKeys", "PermitUserEnvironment",
    "PerSourceMaxStartups", "PerSourceNetBlockSize", "PerSourcePenalties",
    "PerSourcePenaltyExemptList", "PidFile", "Port", "PrintLastLog", "PrintMotd", "Protocol",
    "ReverseMappingCheck", "RhostsAuthentication", "SecurityKeyProvider", "ServerKeyBits",
    "SshdAuthPath", "SshdSessionPath", "StrictModes", "SyslogFacility",
    "TCPKeepAlive", "UseDNS", "UseLogin", "UsePAM", "UsePrivilegeSeparation",
    "VerifyReverseMapping", "VersionAddendum", "XAuthLocation",
))
_SUPPORTED = {k.lower(): k for k in SUPPORTED}
_SUPPORTED.update({k: v.keyword for k, v in _alg.SERVER_ALGORITHM_KEYWORDS.items()})
_SUPPORTED.update(LIMIT_KEYWORDS)  # pre-auth limits: protocol/penalty.py
_UNSUPPORTED = {k.lower(): k for k in KNOWN_UNSUPPORTED if k.lower() not in _SUPPORTED}
_DEPRECATED = {k.lower(): k for k in DEPRECATED}
_BUILT_WITHOUT = {k.lower(): k for k in BUILT_WITHOUT}
