"""agent/: the SSH agent protocol, the in-memory key store, the daemon and the client.

Importing this package imports nothing heavy; pick the module you need:
``agent.client`` (AgentClient, connect_agent), ``agent.keyring`` (KeyRing),
``agent.daemon`` (serve an Agent on a socket), ``agent.messages`` (the wire protocol).
"""
