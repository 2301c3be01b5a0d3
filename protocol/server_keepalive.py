"""ClientAliveInterval / ClientAliveCountMax: the server's keepalive@openssh.com probes.

Every ClientAliveInterval seconds pysshd sends the global request keepalive@openssh.com
with want-reply; any reply (the client answers REQUEST_FAILURE) resets the count of
unanswered probes. When a probe would be the (CountMax + 1)-th unanswered one, the
connection is dropped with sshd's log line "Timeout, client not responding from user
NAME ADDRESS port PORT"; a CountMax of 0 never drops (OpenSSH 8.2 on). The probes
travel inside the encrypted channel, so unlike TCPKeepAlive they cannot be spoofed.
Unlike sshd, a probe goes out every interval even while the client is sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from keytools.errors import SshError
from protocol import errors
from protocol.channels import ConnectionLayer

log = logging.getLogger("pyssh.sshd")

KEEPALIVE_REQUEST = "keepalive@openssh.com"


class ClientAlive:
    """The probe loop of one authenticated connection."""

    def __init__(self, layer: ConnectionLayer, interval: int, count_max: int,
                 connection_id: str) -> None:
        self.layer = layer
        self.interval = interval
        self.count_max = count_max
        #: "user NAME ADDRESS port PORT", as sshpkt_fmt_connection_id() writes it
        self.connection_id = connection_id
        self.unanswered = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0 and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
            self.layer.transport.on_close(lambda exc: self.stop())

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def _probe(self) -> None:
        with contextlib.suppress(SshError):
            await self.layer.global_request(KEEPALIVE_REQUEST, b"", want_reply=True)
            self.unanswered = 0

    async def _run(self) -> None:
        transport = self.layer.transport
        probes: set[asyncio.Task[None]] = set()
        try:
            while transport.error is None:
                await asyncio.sleep(self.interval)
                if transport.error is not None:
                    return
                self.unanswered += 1
                if self.count_max > 0 and self.unanswered > self.count_max:
                    log.info("Timeout, client not responding from %s", self.connection_id)
                    transport.disconnect(errors.DISCONNECT_BY_APPLICATION,
                                         "Timeout, client not responding")
                    return
                probe = asyncio.get_running_loop().create_task(self._probe())
                probes.add(probe)
                probe.add_done_callback(probes.discard)
        finally:
            for probe in probes:
                probe.cancel()
