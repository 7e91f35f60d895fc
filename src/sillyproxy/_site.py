"""The twisted.web Site, channel and Request, made strict and tuned for proxying."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

from twisted.internet.interfaces import IAddress, IHalfCloseableProtocol, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource
from twisted.web.server import Request, Site
from zope.interface import implementer

from ._accesslog import AccessRecord
from ._compat import HTTPChannelWithHooks, RequestWithPlainFirstWrite, header_key, header_values
from ._headers import connection_tokens
from ._request_head import deliver_request_head, may_read_whole_head, whole_request_head
from ._sweep import Sweep
from ._target import valid_host
from ._tunnel import Tunnel

__all__ = ["ProxyChannel", "ProxyRequest", "ProxySite"]

# After refusing a request, keep reading (and discarding) for this long
# before closing: closing with unread data makes the kernel send a reset,
# which can destroy the error response before the client reads it.
LINGER_SECONDS = 2.0

# A chunk-size beyond this cannot be a real body, whatever the limit.
_ABSURD_CHUNK_SIZE = 2**63
_CONNECTION = header_key(b"connection")
_HOST = header_key(b"host")


class ProxyRequest(RequestWithPlainFirstWrite):
    """
    A Request that leaves the body alone for the backend to interpret, and
    refuses one larger than the site's C{max_body}.
    """

    # Narrower than twisted.web's declarations: always a ProxyChannel, and
    # the body spool exists from gotLength on.
    channel: ProxyChannel
    content: BinaryIO
    _received = 0

    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.max_body
        if limit and length is not None and length > limit:
            # Refuse on the declared length, before reading any of the body,
            # and don't invite the client to send it.
            self.requestHeaders.removeHeader(b"expect")
            self._refuse_too_large(limit)
        super().gotLength(None if self.channel.rejected else length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.channel.rejected:
            return
        limit = self.channel.site.max_body
        self._received += len(data)
        if limit and self._received > limit:
            # A chunked body went over: stop here, so the spool on disk
            # never holds more than the limit.
            self._refuse_too_large(limit)
            return
        self.content.write(data)

    def _refuse_too_large(self, limit: int) -> None:
        self.channel.reject(
            413,
            b"Content Too Large",
            f"request body is larger than the limit of {limit} bytes",
        )

    def parseCookies(self) -> None:
        # The proxy passes cookies on untouched; parsing them is wasted work.
        pass

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """
        Like twisted.web's, minus parsing the query and body into
        C{request.args}, which a proxy never reads.
        """
        if self.channel.rejected:
            return
        self.content.seek(0, 0)
        self.args = {}
        self.method, self.uri = command, path
        self.clientproto = version
        self.path = path.split(b"?", 1)[0]
        self.process()

    def process(self) -> None:
        """
        Render the site's resource directly: the proxy's resource is a leaf
        at the root, so there is nothing to traverse, and the Server and
        Date headers twisted.web would set are the backend's to send.
        """
        self.site = self.channel.site
        self.prepath = []
        self.postpath = []
        try:
            self.render(self.site.resource)
        except Exception:
            self.processingFailed(Failure())


def _loggable(raw: bytes) -> bytes:
    """
    A refused request's method or target, safe for one log field: spaces
    and control bytes percent-encoded (the request line was never parsed,
    so they may be there), C{-} if empty.
    """
    if not raw:
        return b"-"
    if raw.translate(None, _UNSAFE_IN_LOG) == raw:
        return raw
    return b"".join(b"%%%02X" % byte if byte in _UNSAFE_IN_LOG else bytes([byte]) for byte in raw)


_UNSAFE_IN_LOG = bytes(range(0x21)) + b"\x7f"


@implementer(IHalfCloseableProtocol)
class ProxyChannel(HTTPChannelWithHooks):
    """
    An HTTP/1.1 channel that refuses what a proxy must not pass on, times
    out slow request headers and bodies, and lets the site track and drain
    it.  Every refusal is answered with a status and a one-line reason, and
    reported to the site (for the access log and metrics).

    Refused with 400: HTTP/1.1 without Host, more than one Host, obs-fold
    continuation lines, bare LF line endings, and any Transfer-Encoding but
    C{chunked}, as well as what twisted.web itself finds malformed
    (Content-Length with Transfer-Encoding, repeated Content-Length, bad
    chunking).  With 414 a request line, and with 431 a header line or a
    whole head, longer than twisted.web's limit (16 KiB); with 413 a body
    (declared, chunk by chunk, or as sent) over the site's C{max_body}.
    """

    # Set by the site (buildProtocol) and by makeConnection, before any
    # method below runs.
    site: ProxySite
    # TCP, or TLS over TCP, when serving; in-memory transports in tests may
    # provide only ITransport, which reject() allows for.
    transport: ITCPTransport
    rejected = False
    # Set once the backend switched protocols: the connection is a tunnel.
    tunnel: Tunnel | None = None
    _host: IAddress | None = None
    # When the current request's headers began to arrive (clock seconds),
    # while they are still arriving; the site's sweep enforces the limit.
    header_started: float | None = None
    # Since when (clock seconds) the connection has waited for a request,
    # between a response and the next request's first byte; the site's
    # sweep closes it after the idle timeout.
    idle_since: float | None = None
    # True from the connection's start, and again after each response,
    # until a request's headers are complete.
    _reading_headers = True
    _header_lines = 0
    # The HTTP version the current request line names.
    _request_version = b""
    _last_byte = b""
    # Some bytes of a request have arrived (it may not be parsed yet).
    _request_started = False
    # When the current request's first byte arrived (clock seconds).
    _request_began: float | None = None
    _request_line = b""
    _head_bytes = 0
    # While a request body is arriving: since when (clock seconds) the
    # sweep has seen no new read of it, and the reads it saw.  Counting
    # reads keeps the clock out of the per-read path.
    body_since: float | None = None
    _body_reads = 0
    _body_reads_seen = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.channel_opened(self)
        self.header_started = self.idle_since = self.site.reactor.seconds()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.header_started = None
        if self.tunnel is not None:
            self.tunnel.client_closed()
        super().connectionLost(reason)
        self.site.channel_closed(self)

    def readConnectionLost(self) -> None:
        # The client will send no more.  A tunnel passes that on; otherwise
        # close, as the channel did before it took half-closes.
        if self.tunnel is not None:
            self.tunnel.client_half_closed()
        else:
            self.transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass

    _secure: bool | None = None

    def isSecure(self) -> bool:
        # Asked for every request; a zope adaptation each time otherwise.
        if self._secure is None:
            self._secure = super().isSecure()
        return self._secure

    def abort(self) -> None:
        """Abort the connection (a response cut short must not look complete)."""
        self.transport.abortConnection()

    def connection_transport(self) -> ITCPTransport:
        """The transport whose kernel counters tell how far the client has read."""
        return self.transport

    def getHost(self) -> IAddress:
        # Asked for every request by twisted.web; a system call each time.
        if self._host is None:
            self._host = self.transport.getHost()
        return self._host

    _peer: IAddress | None = None

    def getPeer(self) -> IAddress:
        # Also asked for every request; a new address object each time.
        if self._peer is None:
            self._peer = self.transport.getPeer()
        return self._peer

    @property
    def busy(self) -> bool:
        """Whether a request is in progress, or has begun to arrive, on this connection."""
        return bool(self.requests) or self._request_started

    def dataReceived(self, data: bytes) -> None:
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.from_client(data)
            return
        if self.rejected:
            return
        if self._reading_headers:
            if not self._request_started:
                self._request_started = True
                self.idle_since = None
                self._request_began = self.site.reactor.seconds()
                if self.header_started is None:
                    self.header_started = self._request_began
            if self.line_mode and b"\n" in data:
                head = data.split(b"\r\n\r\n", 1)[0]
                # Every LF in the head must end a CRLF (two counts in C are
                # cheaper than a regular expression with a look-behind).
                if head.count(b"\n") != head.count(b"\r\n") + (
                    head[:1] == b"\n" and self._last_byte == b"\r"
                ):
                    self.reject(400, b"Bad Request", "bare LF line endings are not allowed")
                    return
            self._last_byte = data[-1:]
            if may_read_whole_head(self):
                whole = whole_request_head(data, min(self.totalHeadersSize, self.MAX_LENGTH), self.maxHeaders)
                if whole is not None:
                    self._request_line = whole.line
                    self._request_version = whole.version
                    deliver_request_head(self, whole, data)
                    return
        elif self.body_since is not None:
            self._body_reads += 1
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self.rejected:
            return
        if self._reading_headers:
            if self._header_lines and line[:1] in (b" ", b"\t"):
                self.reject(400, b"Bad Request", "obsolete line folding is not allowed")
                return
            if line or self._header_lines:
                if not self._header_lines:
                    # The request line: method, target, version.
                    self._request_line = line
                    self._request_version = line.rpartition(b" ")[2]
                self._header_lines += 1
                # The same sum twisted.web limits, but answered with 431
                # rather than a bare 400.
                self._head_bytes += len(line)
                if self._head_bytes > self.totalHeadersSize:
                    self.reject(
                        431,
                        b"Request Header Fields Too Large",
                        f"request headers are larger than {self.totalHeadersSize} bytes",
                    )
                    return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self._header_lines:
            # Log the method; the target is what is too long to log.
            self._request_line = line.partition(b" ")[0][:32] + b" "
            self.reject(414, b"URI Too Long", f"request line is longer than {self.MAX_LENGTH} bytes")
        else:
            self.reject(
                431,
                b"Request Header Fields Too Large",
                f"a header line is longer than {self.MAX_LENGTH} bytes",
            )

    def bad_request(self) -> None:
        self.reject(400, b"Bad Request", "malformed request")

    def chunk_size_received(self, size: int) -> None:
        limit = self.site.max_body
        received = self.requests[-1]._received if self.requests else 0
        if size >= _ABSURD_CHUNK_SIZE or (limit and received + size > limit):
            # Refuse on the declared size, before the bytes arrive.
            self.reject(
                413,
                b"Content Too Large",
                f"request body is larger than the limit of {limit} bytes"
                if limit
                else "request body chunk is too large",
            )

    def headerReceived(self, line: bytes) -> bool:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"transfer-encoding" and value.strip().lower() != b"chunked":
            self.reject(400, b"Bad Request", "only Transfer-Encoding: chunked is accepted")
            return False
        return super().headerReceived(line)

    def allHeadersReceived(self) -> None:
        self.header_started = None
        self._reading_headers = False
        self._header_lines = 0
        self._head_bytes = 0
        request = self.requests[-1]
        hosts = header_values(request.requestHeaders, _HOST) or ()
        if len(hosts) > 1 or (hosts and b"," in hosts[0]):
            self.reject(400, b"Bad Request", "more than one Host header")
            return
        if not hosts and self._request_version == b"HTTP/1.1":
            self.reject(400, b"Bad Request", "HTTP/1.1 requests need a Host header")
            return
        if hosts and not valid_host(hosts[0]):
            self.reject(400, b"Bad Request", "Host is not a valid host[:port]")
            return
        super().allHeadersReceived()
        if self.length != 0 and not self.rejected:
            self.body_since = self.site.reactor.seconds()

    def allContentReceived(self) -> None:
        self.body_since = None
        super().allContentReceived()

    def checkPersistence(self, request: Request, version: bytes) -> bool:
        # twisted.web splits Connection on spaces, so "close, te" would keep
        # the connection open; the header is a comma-separated list.
        tokens = connection_tokens(header_values(request.requestHeaders, _CONNECTION) or ())
        if version != b"HTTP/1.1" or b"close" in tokens or self.site.draining:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return True

    def requestDone(self, request: Request) -> None:
        self._reading_headers = True
        self._request_started = False
        self._request_line = b""
        # Idle from now on: a kept-alive connection waits for the next
        # request, and a closing one for the client to read the response's
        # tail, which must not take forever either.
        self.idle_since = self.site.reactor.seconds()
        super().requestDone(request)

    def headers_too_slow(self) -> None:
        """The site's sweep found this request's headers past the limit."""
        self.header_started = None
        if not self._request_started:
            # Not a byte yet (a browser's preconnect, an idle balancer's
            # connection): no request to answer, log or count.
            self.rejected = True
            self.persistent = False
            self.transport.loseConnection()
            return
        self.reject(408, b"Request Timeout", "request headers took too long")

    def body_stalled(self, now: float, due: float) -> bool:
        """Whether the body being received has had no read since C{due}; the sweep asks."""
        if self._body_reads != self._body_reads_seen:
            self._body_reads_seen = self._body_reads
            self.body_since = now
            return False
        since = self.body_since
        return since is not None and since <= due

    def body_too_slow(self) -> None:
        """The site's sweep found this request's body stalled past the limit."""
        self.body_since = None
        # Nothing of this request has gone to a backend yet: twisted.web
        # hands a request over only once its body is complete.
        self.reject(408, b"Request Timeout", "request body stalled")

    def reject(self, status: int, reason: bytes, message: str) -> None:
        """
        Answer with an error and end the connection, reading and throwing
        away whatever else the client sends for a moment first.
        """
        if self.rejected:
            return
        self.rejected = True
        self.header_started = self.body_since = None
        self.persistent = False
        body = message.encode("utf-8") + b"\n"
        transport = self.transport
        if any(request.startedWriting and not request.finished for request in self.requests):
            # A response on this connection is still going out: an error
            # written now would land inside it.  (twisted.web reads no
            # further request while one is served, so this should not be.)
            transport.abortConnection()
            return
        transport.write(
            b"HTTP/1.1 %d %s\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.site.refused(self, status, message, len(body))
        if ITCPTransport.providedBy(transport):
            transport.loseWriteConnection()
            self.callLater(LINGER_SECONDS, transport.abortConnection)
        else:
            transport.loseConnection()

    def refused_record(self, status: int, message: str, body_bytes: int, now: float) -> AccessRecord:
        """The access record of a request this channel refused."""
        method, _, rest = self._request_line.partition(b" ")
        target = rest.rpartition(b" ")[0] if b" " in rest else rest
        began = self._request_began if self._request_began is not None else now
        request = self.requests[-1] if self.requests else None
        headers = request.requestHeaders if request is not None else None

        def header(name: bytes) -> str:
            values = headers.getRawHeaders(name) if headers is not None else None
            return values[0].decode("ascii", "backslashreplace") if values else "-"

        return AccessRecord(
            time=began,
            client=getattr(self.getPeer(), "host", "-"),
            method=_loggable(method[:32]),
            target=_loggable(target),
            color="-",
            status=status,
            body_bytes=body_bytes,
            duration=now - began,
            outcome=message,
            host=header(b"host"),
            user_agent=header(b"user-agent"),
        )


class NegotiatingChannel(Protocol):
    """
    A TLS connection's protocol: the HTTP/1.1 channel, swapped for an
    HTTP/2 connection at the first bytes if ALPN chose C{h2}.  The channel
    exists from the start, so the header timeout and the drain cover a
    connection that never sends anything.  (Twisted's TLS layer reports no
    half-close, so this protocol takes none.)
    """

    def __init__(self, site: ProxySite, channel: ProxyChannel) -> None:
        self._site = site
        self._inner: Any = channel
        self._chosen = False

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        self.connected = True
        self._inner.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        if not self._chosen:
            self._chosen = True
            if getattr(self.transport, "negotiatedProtocol", None) == b"h2":
                self._switch_to_h2()
        self._inner.dataReceived(data)

    def _switch_to_h2(self) -> None:
        from ._http2 import ProxyH2Connection

        channel = self._inner
        # The channel registered itself as the transport's producer.
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        self._site.forget_channel(channel)
        connection = ProxyH2Connection(self._site)
        self._inner = connection
        connection.makeConnection(self.transport)
        # Paused and resumed by the transport as its write buffer fills and
        # drains, as the channel was.
        self.transport.registerProducer(connection, True)  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self._inner.connectionLost(reason)


class ProxySite(Site):
    """
    A Site that never shows a traceback, enforces a request body limit and a
    header timeout, keeps track of its connections so they can be drained,
    and leaves access logging to the forwarding resource, which knows the
    colour and the duration.

    @param max_body: the largest request body accepted, in bytes; 0 for no
        limit.
    @param header_timeout: seconds a client has to send complete request
        headers; 0 for no limit.
    @param body_timeout: seconds a request body may go without a byte; 0
        for no limit.
    @param on_refused: told of every request the channel refuses itself
        (400, 408, 413, 414, 431), with an L{AccessRecord} whose colour is
        C{-}.
    """

    # A plain HTTP/1.1 channel: sillyproxy does not negotiate HTTP/2, so
    # twisted.web's protocol-switching wrapper would only add a call per read.
    protocol = ProxyChannel  # type: ignore[assignment]
    requestFactory = ProxyRequest
    displayTracebacks = False
    noisy = False

    def __init__(
        self,
        resource: IResource,
        max_body: int = 0,
        header_timeout: float = 0,
        body_timeout: float = 0,
        on_refused: Callable[[AccessRecord], None] | None = None,
        **kwargs: object,
    ) -> None:
        # A proxy never reads request.args, so twisted.web need not read a
        # whole form or multipart upload into memory to fill it.
        super().__init__(resource, parsePOSTFormSubmission=False, **kwargs)
        self.max_body = max_body
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.on_refused = on_refused
        # twisted.web's idle timeout (the Site's timeout argument), enforced
        # by the sweep below rather than by a timer each channel sets and
        # cancels around every request.
        self.idle_timeout = self.timeOut
        self.timeOut = None
        self.draining = False
        self.channels: set[ProxyChannel] = set()
        self._on_idle: list[Callable[[], None]] = []
        limits = [
            limit for limit in (header_timeout, body_timeout, self.idle_timeout) if limit
        ]
        # One sweep for all connections instead of a timer per request: each
        # limit is enforced to within a quarter of the shortest (or 1 s).
        self._sweep: Sweep | None = None
        if limits:
            self._sweep = Sweep(self.reactor, min(1.0, min(limits) / 4), self._sweep_channels)
        self._started = False

    def startFactory(self) -> None:
        super().startFactory()
        self._started = True
        if self._sweep is not None and self.channels:
            self._sweep.wake()

    def stopFactory(self) -> None:
        self._started = False
        if self._sweep is not None:
            self._sweep.stop()
        super().stopFactory()

    def _sweep_channels(self, now: float) -> bool:
        headers_due = now - self.header_timeout if self.header_timeout else None
        idle_due = now - self.idle_timeout if self.idle_timeout else None
        body_due = now - self.body_timeout if self.body_timeout else None
        for channel in list(self.channels):
            started = channel.header_started
            if headers_due is not None and started is not None and started <= headers_due:
                channel.headers_too_slow()
                continue
            if body_due is not None and channel.body_since is not None:
                if channel.body_stalled(now, body_due):
                    channel.body_too_slow()
                continue
            idle = channel.idle_since
            if idle_due is not None and idle is not None and idle <= idle_due:
                channel.idle_since = None
                # twisted.web's own response to its idle timeout: a log
                # line, a clean close, and an abort if that hangs.
                channel.timeoutConnection()
        return bool(self.channels)

    def refused(self, channel: ProxyChannel, status: int, message: str, body_bytes: int) -> None:
        """The channel refused a request itself: log and count it."""
        if self.on_refused is not None:
            self.on_refused(channel.refused_record(status, message, body_bytes, self.reactor.seconds()))

    def channel_opened(self, channel: ProxyChannel) -> None:
        self.channels.add(channel)
        if self._started and self._sweep is not None:
            self._sweep.wake()

    def channel_closed(self, channel: ProxyChannel) -> None:
        self.channels.discard(channel)
        if not self.channels:
            waiting, self._on_idle = self._on_idle, []
            for callback in waiting:
                callback()

    def when_no_channels(self, callback: Callable[[], None]) -> None:
        """Call C{callback} once every connection has closed (now, if none is open)."""
        if self.channels:
            self._on_idle.append(callback)
        else:
            callback()

    def acceptableProtocols(self) -> list[bytes]:
        # Offered over ALPN on TLS listeners, whose connections start as a
        # NegotiatingChannel; plain TCP speaks HTTP/1.1 only (no h2c).
        return [b"h2", b"http/1.1"]

    def buildNegotiatedProtocol(self, addr: IAddress) -> NegotiatingChannel:
        """The protocol for a TLS connection: HTTP/1.1, or HTTP/2 if ALPN chooses it."""
        channel = self.buildProtocol(addr)
        assert channel is not None
        return NegotiatingChannel(self, channel)

    def forget_channel(self, channel: ProxyChannel) -> None:
        """Stop tracking a channel that was replaced before it served anything."""
        self.channels.discard(channel)

    def log(self, request: http.Request) -> None:
        pass
