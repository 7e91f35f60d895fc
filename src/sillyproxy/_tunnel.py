"""
Upgrade tunnels (WebSocket and the like): what the proxy does once a
backend has answered C{101 Switching Protocols}.

The proxy does not parse the protocol spoken after the switch; it copies
bytes both ways until either side closes, and passes a half-close on.
Each side's transport is the producer for the other, so a fast sender is
paused rather than buffered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from attrs import frozen
from twisted.internet.interfaces import IPushProducer, ITCPTransport, ITransport

__all__ = ["Switched", "Tunnel", "upgrade_tokens", "wants_upgrade"]


@frozen
class Switched:
    """A backend's C{101} answer: its status line, its headers, and the bytes that followed them."""

    phrase: bytes
    headers: Sequence[tuple[bytes, bytes]]
    rest: bytes


def upgrade_tokens(values: Sequence[bytes] | None) -> list[bytes]:
    """The protocols an C{Upgrade} header lists, lower-cased."""
    if not values:
        return []
    return [token.strip().lower() for value in values for token in value.split(b",") if token.strip()]


def wants_upgrade(connection_tokens: frozenset[bytes], upgrade: Sequence[bytes] | None) -> bool:
    """
    Whether a request asks to switch protocols through the proxy:
    C{Connection: upgrade} and an C{Upgrade} header that names no C{h2c}
    (HTTP/2 over cleartext is never tunnelled: it would let a client speak
    HTTP/2 past the proxy's rules, h2c smuggling).
    """
    if b"upgrade" not in connection_tokens:
        return False
    protocols = upgrade_tokens(upgrade)
    return bool(protocols) and not any(p.split(b"/")[0] == b"h2c" for p in protocols)


class Tunnel:
    """
    Bytes copied both ways between a client and a backend connection.

    @param client: the client's transport.
    @param backend: the backend's transport.
    @ivar ended_by: who ended the tunnel first: C{"client"}, C{"backend"},
        C{"idle"} (the tunnel idle timeout), or None while it is open.
    """

    def __init__(self, client: ITransport, backend: ITransport) -> None:
        self._client = client
        self._backend = backend
        self.bytes_from_client = 0
        self.bytes_from_backend = 0
        self.ended_by: str | None = None
        self._client_done = False
        self._backend_done = False
        self._closed = False
        # Reads counted, for the idle sweep (no clock on the data path).
        self.reads = 0
        self.reads_seen = -1
        self.quiet_since = 0.0

    def start(self) -> None:
        """
        Make the client's transport the producer for the backend's, so a
        full backend write buffer stops reads from the client (the caller
        arranges the other direction), and read from both.
        """
        # TCP and TLS transports are push producers too.
        client = cast(IPushProducer, self._client)
        self._backend.registerProducer(client, True)  # type: ignore[attr-defined]
        client.resumeProducing()
        cast(IPushProducer, self._backend).resumeProducing()

    def from_client(self, data: bytes) -> None:
        self.reads += 1
        self.bytes_from_client += len(data)
        self._backend.write(data)

    def from_backend(self, data: bytes) -> None:
        self.reads += 1
        self.bytes_from_backend += len(data)
        self._client.write(data)

    def client_half_closed(self) -> None:
        """The client will send no more: tell the backend the same."""
        self._client_done = True
        if self.ended_by is None:
            self.ended_by = "client"
        _close_writing(self._backend)
        self._close_if_both_done()

    def backend_half_closed(self) -> None:
        """The backend will send no more: tell the client the same."""
        self._backend_done = True
        if self.ended_by is None:
            self.ended_by = "backend"
        _close_writing(self._client)
        self._close_if_both_done()

    def _close_if_both_done(self) -> None:
        # Neither side will send again: Twisted keeps a connection whose
        # halves are both shut open until it is closed, so close both.
        if self._client_done and self._backend_done:
            self._close_both()

    def client_closed(self) -> None:
        self._end("client", self._backend)

    def backend_closed(self) -> None:
        self._end("backend", self._client)

    def check_idle(self, now: float, timeout: float) -> None:
        """Close the tunnel if no byte went either way since the last check C{timeout} ago; a sweep calls this."""
        if self.reads != self.reads_seen:
            self.reads_seen = self.reads
            self.quiet_since = now
        elif now - self.quiet_since >= timeout:
            self.close("idle")

    def close(self, why: str) -> None:
        """Close both sides (the proxy does not parse frames, so it cannot close more politely)."""
        if self.ended_by is None:
            self.ended_by = why
        self._close_both()

    def _end(self, side: str, other: ITransport) -> None:
        if self.ended_by is None:
            self.ended_by = side
        self._close_both()

    def _close_both(self) -> None:
        # Once only; whatever half-closes came first.
        if self._closed:
            return
        self._closed = True
        for transport in (self._client, self._backend):
            # A TLS transport will not close while a producer is registered.
            unregister = getattr(transport, "unregisterProducer", None)
            if unregister is not None:
                try:
                    unregister()
                except RuntimeError:
                    # None was registered (some transports say so loudly).
                    pass
            transport.loseConnection()


def _close_writing(transport: ITransport) -> None:
    if ITCPTransport.providedBy(transport):
        transport.loseWriteConnection()
    else:
        transport.loseConnection()
