"""The reuseport:PORT server endpoint: a TCP listener that shares its port with other processes."""

from __future__ import annotations

import socket

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorSocket,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

__all__ = ["ReusePortEndpoint", "ReusePortParser", "reuseport_socket"]


def reuseport_socket(interface: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking TCP socket listening on C{interface:port} with SO_REUSEPORT."""
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except Exception:
        sock.close()
        raise
    return sock


@implementer(IStreamServerEndpoint)
class ReusePortEndpoint:
    """
    Listen on a TCP port with SO_REUSEPORT, so that a second proxy can bind
    the same port while the first drains: the kernel spreads new connections
    over every process listening, which gives a hitless restart on a plain
    host, as nginx and HAProxy do it.
    """

    def __init__(self, reactor: IReactorSocket, port: int, interface: str = "", backlog: int = 511) -> None:
        self._reactor = reactor
        self._port = port
        self._interface = interface
        self._backlog = backlog

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        try:
            sock = reuseport_socket(self._interface, self._port, self._backlog)
        except Exception as e:
            return fail(e)
        try:
            # The interface asks for a ServerFactory; any protocol factory
            # serves, as for Twisted's own endpoints.
            listening = self._reactor.adoptStreamPort(
                sock.fileno(), sock.family, protocolFactory  # type: ignore[arg-type]
            )
        except Exception as e:
            return fail(e)
        finally:
            # adoptStreamPort took its own copy of the descriptor.
            sock.close()
        return succeed(listening)


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ReusePortParser:
    """Parses C{reuseport:PORT[:interface=ADDRESS][:backlog=N]}."""

    prefix = "reuseport"

    def parseStreamServer(self, reactor, *args, **kwargs):  # type: ignore[no-untyped-def]
        if len(args) != 1:
            raise ValueError("reuseport takes one port number, e.g. reuseport:8080")
        unknown = set(kwargs) - {"interface", "backlog"}
        if unknown:
            raise ValueError(f"reuseport does not take {', '.join(sorted(unknown))}")
        port = int(args[0])
        if not 0 <= port <= 65535:
            raise ValueError("port must be from 0 to 65535")
        return ReusePortEndpoint(
            reactor, port, kwargs.get("interface", ""), int(kwargs.get("backlog", 511))
        )
