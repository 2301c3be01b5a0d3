"""The agent's error types, worded as OpenSSH's ssh-add and ssh prints them."""

from __future__ import annotations

from keytools.errors import SshError


class AgentError(SshError):
    """The agent answered SSH_AGENT_FAILURE (ssherr's SSH_ERR_AGENT_FAILURE)."""

    default_message = "agent refused operation"


class AgentExtensionFailure(AgentError):
    """The agent knows the extension but it failed (SSH_AGENT_EXTENSION_FAILURE)."""

    default_message = "agent refused operation"


class AgentConnectionError(SshError):
    """No agent to talk to, or the connection broke (SSH_ERR_AGENT_NOT_PRESENT)."""

    default_message = "Could not open a connection to your authentication agent."


class AgentCommunicationError(AgentConnectionError):
    """The agent sent something that is not a valid reply (SSH_ERR_AGENT_COMMUNICATION)."""

    default_message = "communication with agent failed"


class AgentLocked(AgentError):
    """The operation needs an unlocked agent."""

    default_message = "agent refused operation"


class AgentSocketError(AgentConnectionError):
    """Connecting to $SSH_AUTH_SOCK failed; the message is strerror (ssh-add prints
    "Error connecting to agent: <message>")."""

    default_message = "Connection refused"
