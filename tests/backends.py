"""Backends served from the test process's reactor, for the end-to-end tests."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from twisted.internet import reactor
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

MIB = 1024 * 1024
BIG_RESPONSE = 50 * MIB


def pattern(size: int) -> Iterator[bytes]:
    """Deterministic, non-repeating-looking bytes, in 64 KiB chunks."""
    block = hashlib.sha256(b"sillyproxy").digest() * 2048
    sent = 0
    counter = 0
    while sent < size:
        chunk = (counter.to_bytes(8, "big") + block)[: min(len(block), size - sent)]
        yield chunk
        sent += len(chunk)
        counter += 1


class BigBody(Resource):
    """Streams a large body with a registered producer, as a real backend would."""

    isLeaf = True

    def render_GET(self, request):  # type: ignore[no-untyped-def]
        return stream_pattern(request, BIG_RESPONSE)


class HeaderRecorder(Resource):
    """Records each request's headers (names lower-cased) and answers 'ok'."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[bytes, list[bytes]]] = []

    def render(self, request):  # type: ignore[no-untyped-def]
        self.seen.append({name.lower(): values for name, values in request.requestHeaders.getAllRawHeaders()})
        request.setHeader(b"content-type", b"text/plain")
        return b"ok"


def stream_pattern(request, size: int):  # type: ignore[no-untyped-def]
    """Answer C{request} with C{size} bytes of L{pattern}, produced only as fast as the client reads them."""
    request.setHeader(b"content-length", b"%d" % size)
    request.setHeader(b"content-type", b"application/octet-stream")
    chunks = pattern(size)

    class Producer:
        def resumeProducing(self) -> None:
            chunk = next(chunks, None)
            if chunk is None:
                request.unregisterProducer()
                request.finish()
            else:
                request.write(chunk)

        def stopProducing(self) -> None:
            pass

    request.registerProducer(Producer(), False)
    return NOT_DONE_YET


class Digest(Resource):
    """Answers with the length and SHA-256 of the request body, and what it was asked for."""

    isLeaf = True

    def render(self, request):  # type: ignore[no-untyped-def]
        digest = hashlib.sha256()
        size = 0
        while chunk := request.content.read(MIB):
            digest.update(chunk)
            size += len(chunk)
        request.setHeader(b"content-type", b"text/plain")
        return b"%d %s %s %s" % (
            size,
            digest.hexdigest().encode(),
            request.uri,
            request.getHeader(b"color") or b"-",
        )


class Slow(Resource):
    """Answers after C{?ms=N} milliseconds (default 200) with the Color it was sent."""

    isLeaf = True

    def render(self, request):  # type: ignore[no-untyped-def]
        delay = int(request.args.get(b"ms", [b"200"])[0]) / 1000
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answer() -> None:
            if not gone:
                request.write((request.getHeader(b"color") or b"-") + b"\n")
                request.finish()

        reactor.callLater(delay, answer)
        request.setHeader(b"content-type", b"text/plain")
        return NOT_DONE_YET


class _Root(Resource):
    """/big and /slow by name; any other path digests its body."""

    def __init__(self) -> None:
        super().__init__()
        self.putChild(b"big", BigBody())
        self.putChild(b"slow", Slow())
        self._digest = Digest()

    def getChild(self, name: bytes, request: object) -> Resource:
        return self._digest


def serve() -> object:
    """Listen on 127.0.0.1 with the test backend; returns the listening port."""
    return reactor.listenTCP(0, Site(_Root()), interface="127.0.0.1")


