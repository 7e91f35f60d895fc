"""The two floors bench/floor.py measures sillyproxy against: twisted.web alone, and twisted.web forwarding with Agent's pool and nothing else."""

import sys

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.web import client
from twisted.web._newclient import Request as ClientRequest
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


class Answer(Resource):
    """twisted.web answering by itself: the server side's own cost."""

    isLeaf = True

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        request.setHeader(b"content-length", b"8")
        return b"blue ok\n"


class Relay(Protocol):
    def __init__(self, request) -> None:  # type: ignore[no-untyped-def]
        self.request = request

    def dataReceived(self, data: bytes) -> None:
        self.request.write(data)

    def connectionLost(self, reason) -> None:  # type: ignore[no-untyped-def]
        if self.request.channel is not None:
            self.request.finish()


class Forward(Resource):
    """
    Forward to one backend over Agent's pool and HTTP/1.1 protocol, as
    sillyproxy does, with nothing else: no header rules, timeouts, health,
    metrics, retries or access log.
    """

    isLeaf = True

    def __init__(self, backend_port: int) -> None:
        super().__init__()
        self.pool = client.HTTPConnectionPool(reactor)
        self.pool.maxPersistentPerHost = 100
        self.endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", backend_port)

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        outgoing = ClientRequest._construct(
            b"GET", request.uri, Headers({b"host": [b"backend"]}), None, True
        )
        sending = self.pool.getConnection(b"backend", self.endpoint)
        sending.addCallback(lambda connection: connection.request(outgoing))

        def respond(response):  # type: ignore[no-untyped-def]
            request.setResponseCode(response.code)
            request.setHeader(b"content-length", b"%d" % response.length)
            response.deliverBody(Relay(request))

        sending.addCallback(respond)
        return NOT_DONE_YET


def main() -> None:
    kind, listen_port, backend_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    resource = Answer() if kind == "twisted.web" else Forward(backend_port)
    site = Site(resource)
    site.noisy = False
    site.log = lambda request: None
    reactor.listenTCP(listen_port, site, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()
