"""The twisted.web Site and Request tuned for proxying rather than serving pages."""

from __future__ import annotations

from twisted.internet.interfaces import IAddress, ITCPTransport
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

__all__ = ["ProxyChannel", "ProxyRequest", "ProxySite"]

# After refusing an oversized body, keep reading (and discarding) for this
# long before closing: closing with unread data makes the kernel send a
# reset, which can destroy the 413 before the client reads it.
LINGER_SECONDS = 2.0


class ProxyRequest(Request):
    """
    A Request that leaves the body alone for the backend to interpret, and
    refuses one larger than the site's C{max_body}.
    """

    # twisted.web would otherwise read a whole form or multipart upload into
    # memory to fill request.args, which a proxy never looks at.
    _parsePOSTFormSubmission = False

    _refused = False
    _received = 0

    def gotLength(self, length: int | None) -> None:
        limit = self.channel.site.max_body
        if limit and length is not None and length > limit:
            # Refuse on the declared length, before reading any of the body,
            # and don't invite the client to send it.
            self.requestHeaders.removeHeader(b"expect")
            self._refuse_too_large(limit)
        super().gotLength(None if self._refused else length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        limit = self.channel.site.max_body
        self._received += len(data)
        if limit and self._received > limit:
            # A chunked body went over: stop here, so the spool on disk
            # never holds more than the limit.
            self._refuse_too_large(limit)
            return
        self.content.write(data)

    def parseCookies(self) -> None:
        # The proxy passes cookies on untouched; parsing them is wasted work.
        pass

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """
        Like twisted.web's, minus parsing the query and body into
        C{request.args}, which a proxy never reads.
        """
        if self._refused:
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

    def _refuse_too_large(self, limit: int) -> None:
        self._refused = True
        channel = self.channel
        body = b"request body is larger than the limit of %d bytes\n" % limit
        channel.transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        channel.persistent = False
        transport = channel.transport
        if ITCPTransport.providedBy(transport):
            transport.loseWriteConnection()
            clock = channel.site.reactor
            clock.callLater(LINGER_SECONDS, transport.abortConnection)
        else:
            transport.loseConnection()


class ProxyChannel(HTTPChannel):
    """
    An HTTP/1.1 channel that asks the kernel for its own address once, not
    once per request as twisted.web does.
    """

    _host: IAddress | None = None

    def getHost(self) -> IAddress:
        if self._host is None:
            self._host = self.transport.getHost()
        return self._host


class ProxySite(Site):
    """
    A Site that never shows a traceback, enforces a request body limit, and
    leaves access logging to the forwarding resource, which knows the colour
    and the duration.

    @param max_body: the largest request body accepted, in bytes; 0 for no
        limit.
    """

    # A plain HTTP/1.1 channel: sillyproxy does not negotiate HTTP/2, so
    # twisted.web's protocol-switching wrapper would only add a call per read.
    protocol = ProxyChannel
    requestFactory = ProxyRequest
    displayTracebacks = False
    noisy = False

    def __init__(self, resource: IResource, max_body: int = 0, **kwargs: object) -> None:
        super().__init__(resource, **kwargs)  # type: ignore[arg-type]
        self.max_body = max_body

    def log(self, request: Request) -> None:
        pass
