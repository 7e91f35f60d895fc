"""
TLS listeners whose certificate can be replaced while they listen.

Twisted's C{ssl:} endpoint reads the key and certificate files once, into a
C{CertificateOptions}, and hands that to C{reactor.listenSSL}.  To re-read
them on SIGHUP without a restart, every listen endpoint is made through a
reactor stand-in (L{TLSListeningReactor}) whose C{listenSSL} gives the
reactor a L{SwappableServerTLS} instead: a connection creator
(C{IOpenSSLServerConnectionCreator}) that makes each new connection from
the options it holds now.  A reload parses the same endpoint description
again with Twisted's own parser, which re-reads the files (so every
C{ssl:} option, C{extraCertChain} and C{dhParameters} included, means what
it meant at start), and swaps the options in.  Connections already open
keep the OpenSSL context they were made with.

Public Twisted APIs only: C{serverFromString}, C{IStreamServerEndpoint.listen},
C{IReactorSSL.listenSSL}, C{IOpenSSLServerConnectionCreator} and
C{IOpenSSLContextFactory.getContext}.  Endpoints that wrap an C{ssl:} one
(C{haproxy:ssl:...}) reload the same way.

ALPN is set once on each context, before any connection is made from it,
and the site is handed to Twisted without its protocol list: Twisted 25.5
sets ALPN on the shared context for every new connection, which
pyOpenSSL 25 and later refuse once the context has made one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import (
    IAddress,
    IListeningPort,
    IProtocolNegotiationFactory,
    IOpenSSLContextFactory,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

__all__ = [
    "SwappableServerTLS",
    "TLSListeners",
    "TLSListeningReactor",
    "describe_certificate",
    "read_server_tls",
]

_log = Logger(namespace="sillyproxy")


@implementer(IOpenSSLServerConnectionCreator)
class SwappableServerTLS:
    """
    Makes each new server-side TLS connection from the options it holds;
    L{replace} swaps them for the connections to come.
    """

    def __init__(self, options: IOpenSSLContextFactory, protocols: Sequence[bytes] = ()) -> None:
        # Build the context now, so that a key that does not match its
        # certificate fails at listen, as Twisted's own ssl: listener does.
        self._protocols = tuple(protocols)
        _offer(options.getContext(), self._protocols)
        self.options = options

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        # What Twisted does with a context factory: one context, made once
        # and kept by the options, shared by every connection made from them.
        return SSL.Connection(self.options.getContext(), None)

    def replace(self, options: IOpenSSLContextFactory) -> None:
        """
        Serve new connections with C{options}, once they prove usable.

        @raise Exception: whatever building their context raised (a key
            that does not match the certificate); nothing is replaced.
        """
        _offer(options.getContext(), self._protocols)
        self.options = options


def _offer(context: SSL.Context, protocols: Sequence[bytes]) -> None:
    """Have C{context} pick the first of C{protocols} that a client offers by ALPN."""
    if not protocols:
        return
    none = getattr(SSL, "NO_OVERLAPPING_PROTOCOLS", b"")

    def choose(connection: SSL.Connection, offered: list[bytes]) -> bytes:
        for protocol in protocols:
            if protocol in offered:
                return protocol
        return none

    context.set_alpn_select_callback(choose)


class _WithoutNegotiation(Factory):
    """A protocol factory's stand-in that does not offer its protocols (so Twisted sets no ALPN itself)."""

    def __init__(self, factory: IProtocolFactory) -> None:
        self._factory = factory

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        # The proxy's site starts TLS connections with a protocol that can
        # become HTTP/2 once ALPN has chosen.
        negotiated = getattr(self._factory, "buildNegotiatedProtocol", None)
        if negotiated is not None:
            return negotiated(addr)
        return self._factory.buildProtocol(addr)  # type: ignore[arg-type, return-value]

    def doStart(self) -> None:
        self._factory.doStart()

    def doStop(self) -> None:
        self._factory.doStop()

    def logPrefix(self) -> str:
        prefix = getattr(self._factory, "logPrefix", None)
        return prefix() if prefix is not None else self._factory.__class__.__name__


def _subject(options: object) -> str:
    certificate = getattr(options, "certificate", None)
    if certificate is None:
        return "an unknown certificate"
    return str(certificate.to_cryptography().subject.rfc4514_string())


def describe_certificate(options: object) -> str:
    """C{CN=example.com, valid until 2026-05-01 12:00:00 UTC}: the certificate C{options} serves."""
    certificate = getattr(options, "certificate", None)
    if certificate is None:
        return "an unknown certificate"
    parsed = certificate.to_cryptography()
    # not_valid_after_utc is cryptography 42's; the naive one is in UTC.
    until = getattr(parsed, "not_valid_after_utc", None) or parsed.not_valid_after
    return f"{_subject(options)}, valid until {until:%Y-%m-%d %H:%M:%S} UTC"


def _reason(error: BaseException) -> str:
    """One line saying why loading failed."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    details = error.args[0] if error.args else None
    if isinstance(details, list) and details and all(isinstance(d, tuple) for d in details):
        # OpenSSL's error queue: [(library, function, reason), ...].
        queue = "; ".join(": ".join(part for part in (d[0], d[-1]) if part) for d in details)
        text = f"the files hold no usable PEM key and certificate (OpenSSL: {queue})"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


class _CaptureTLS:
    """A reactor stand-in that records what listenSSL is given, and listens on nothing."""

    def __init__(self) -> None:
        self.options: list[IOpenSSLContextFactory] = []

    def __getattr__(self, name: str) -> object:
        # listenTCP, listenUNIX, adoptStreamPort...: not TLS, and not to happen.
        return lambda *args, **kwargs: None

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: IOpenSSLContextFactory,
        backlog: int = 50,
        interface: str = "",
    ) -> None:
        self.options.append(contextFactory)


def read_server_tls(description: str) -> IOpenSSLContextFactory:
    """
    Read the TLS settings of the listen endpoint C{description} afresh:
    Twisted's parser reads the key, certificate, chain and DH parameter
    files it names, as at start, but nothing listens.

    @raise ValueError: if C{description} is not a TLS listener.
    @raise Exception: whatever parsing and reading raised (a missing file,
        one that is not PEM).
    """
    capture = _CaptureTLS()
    listened: Deferred[Any] = serverFromString(capture, description).listen(Factory())
    failures: list[Any] = []
    listened.addErrback(failures.append)
    if failures:
        failures[0].raiseException()
    if not capture.options:
        raise ValueError("not a TLS listener")
    return capture.options[0]


class TLSListeningReactor:
    """
    A reactor stand-in for one listen endpoint description: C{listenSSL}
    makes the listener's connections with a L{SwappableServerTLS}, so that
    L{reload} can change its certificate; everything else is C{reactor}'s.
    """

    def __init__(self, reactor: Any, description: str) -> None:
        self._reactor = reactor
        self.description = description
        self.tls: SwappableServerTLS | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self._reactor, name)

    def listenSSL(
        self,
        port: int,
        factory: IProtocolFactory,
        contextFactory: IOpenSSLContextFactory,
        backlog: int = 50,
        interface: str = "",
    ) -> IListeningPort:
        protocols = (
            factory.acceptableProtocols() if IProtocolNegotiationFactory.providedBy(factory) else []
        )
        tls = SwappableServerTLS(contextFactory, protocols)
        listening: IListeningPort = self._reactor.listenSSL(
            port, _WithoutNegotiation(factory), tls, backlog, interface
        )
        self.tls = tls
        _log.info(
            "TLS certificate for {listen}: {certificate}",
            listen=self.description,
            certificate=describe_certificate(contextFactory),
        )
        return listening

    def reload(self) -> bool:
        """
        Re-read this TLS listener's files and serve new connections with
        them; if they do not load, log why (one line) and keep the
        certificate in use.  Return whether the new one is in use.
        """
        tls = self.tls
        if tls is None:
            return False
        try:
            options = read_server_tls(self.description)
            tls.replace(options)
        except Exception as e:
            _log.error(
                "TLS certificate for {listen} not reloaded, still serving {current}: {reason}",
                listen=self.description,
                current=_subject(tls.options),
                reason=_reason(e),
            )
            return False
        _log.info(
            "TLS certificate for {listen} reloaded: {certificate}",
            listen=self.description,
            certificate=describe_certificate(options),
        )
        return True


class TLSListeners:
    """
    Makes the proxy's listen endpoints (and the admin listener's) so that
    the TLS ones among them can reload their certificates (L{reload}, on
    SIGHUP).
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._listeners: list[TLSListeningReactor] = []

    def endpoint(self, description: str) -> IStreamServerEndpoint:
        """The server endpoint for C{description}, as serverFromString makes it."""
        stand_in = TLSListeningReactor(self._reactor, description)
        self._listeners.append(stand_in)
        endpoint: IStreamServerEndpoint = serverFromString(stand_in, description)
        return endpoint

    def reload(self) -> int:
        """Reload every TLS listener's certificate; return how many now serve a new one."""
        tls = [listener for listener in self._listeners if listener.tls is not None]
        if not tls:
            _log.info("SIGHUP: no TLS listener, so no certificate to reload")
            return 0
        return sum(listener.reload() for listener in tls)
