"""
Pins every private Twisted name sillyproxy relies on (see _compat.py,
_pool.py, _request_head.py, _response_head.py and _transport.py): a
Twisted release that changes one fails the test named for it, instead of
corrupting traffic.
"""

from __future__ import annotations

import inspect
import select
import socket

from twisted.internet import tcp
from twisted.internet.base import ReactorBase
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import client
from twisted.web._newclient import (
    HEADER,
    STATUS,
    HTTP11ClientProtocol,
    HTTPClientParser,
    ResponseNeverReceived,
    TransportProxyProducer,
)
from twisted.web._newclient import Request as ClientRequest
from twisted.web.http import HTTPChannel, Request
from twisted.web.http_headers import Headers, InvalidHeaderName
from twisted.web.iweb import INonQueuedRequestFactory
from twisted.web.resource import Resource
from twisted.web.server import Request as ServerRequest
from twisted.web.server import Site

from sillyproxy._compat import (
    ParseError,
    clear_exit_signal,
    copy_canonical_headers,
    header_key,
    header_key_of,
    header_values,
    set_header_values,
)
from sillyproxy._pool import RetirablePool, _ClientProtocol

from .support import TableTests, rows


class _HeldRequest(Request):
    """A request twisted.web's channel makes and then leaves alone."""

    def process(self) -> None:
        pass


class HeadersTests(SynchronousTestCase):
    def test_raw_headers_map_canonical_names_to_lists(self) -> None:
        """If headers are set the public way, then Headers keeps them as canonical name -> list of values, which copy_canonical_headers writes."""
        headers = Headers()
        headers.addRawHeader(b"X-Thing", b"a")
        headers.addRawHeader(b"x-thing", b"b")
        self.assertEqual(headers._rawHeaders, {b"X-Thing": [b"a", b"b"]})

    def test_copied_headers_read_back_publicly(self) -> None:
        """If canonical pairs are copied in, then the public API sees them as if set one by one."""
        source = Headers({b"set-cookie": [b"a=1", b"b=2"], b"content-type": [b"text/plain"]})
        target = Headers()
        copy_canonical_headers(target, source.getAllRawHeaders())  # type: ignore[arg-type]
        self.assertEqual(target.getRawHeaders(b"set-cookie"), [b"a=1", b"b=2"])
        self.assertEqual(target.getRawHeaders(b"Content-Type"), [b"text/plain"])
        self.assertEqual(target, source)


class HeaderKeyTests(TableTests):
    @rows(
        (b"x-request-id", b"X-Request-Id"),
        (b"Content-Length", b"Content-Length"),
        (b"te", b"TE"),
        (b"sillyproxy-color", b"Sillyproxy-Color"),
    )
    def test_key_is_what_headers_keep(self, name: bytes, key: bytes) -> None:
        """If a header is set the public way, then _rawHeaders keeps it under header_key(name), which header_values reads and set_header_values writes."""
        self.assertEqual(header_key(name), key)
        self.assertEqual((header_key_of(name), header_key_of(name)), (key, key))
        headers = Headers()
        headers.addRawHeader(name, b"v")
        self.assertEqual(list(headers._rawHeaders), [key])
        self.assertEqual(header_values(headers, header_key(name)), headers.getRawHeaders(name))
        set_header_values(headers, header_key(name), [b"w"])
        self.assertEqual(headers.getRawHeaders(name), [b"w"])

    @rows((b"x y",), (b"",), (b"x:y",), (b"caf\xc3\xa9",))
    def test_name_not_a_token_refused(self, name: bytes) -> None:
        """If a name read off the wire is not a token, then header_key_of refuses it with the error Headers raises, every time."""
        for _ in range(2):
            with self.assertRaises(InvalidHeaderName):
                header_key_of(name)
        with self.assertRaises(InvalidHeaderName):
            Headers().addRawHeader(name, b"v")

    def test_absent_or_empty_reads_none(self) -> None:
        """If a header is absent, or set to no values, then header_values gives None, as getRawHeaders does."""
        headers = Headers()
        self.assertIsNone(header_values(headers, header_key(b"date")))
        headers.setRawHeaders(b"date", [])
        self.assertIsNone(headers.getRawHeaders(b"date"))
        self.assertIsNone(header_values(headers, header_key(b"date")))


class ExitSignalTests(SynchronousTestCase):
    def test_signal_handlers_record_the_signal(self) -> None:
        """If the reactor is stopped by SIGTERM, then it records the signal in _exitSignal, which clear_exit_signal resets."""
        reactor = MemoryReactorClock()
        from twisted.internet.base import ReactorBase

        self.assertIsNone(ReactorBase._exitSignal)
        self.assertIn("_exitSignal = number", inspect.getsource(ReactorBase.sigTerm))
        reactor._exitSignal = 15  # type: ignore[attr-defined]
        self.assertTrue(clear_exit_signal(reactor))
        self.assertIsNone(reactor._exitSignal)  # type: ignore[attr-defined]
        self.assertFalse(clear_exit_signal(reactor))

    def test_runners_read_it(self) -> None:
        """If twistd or twist has run the reactor, then each re-raises the recorded signal, read from _exitSignal."""
        from twisted.application import app
        from twisted.application.twist import _twist

        self.assertIn("reactor._exitSignal", inspect.getsource(app.ApplicationRunner))
        self.assertIn("reactor._exitSignal", inspect.getsource(_twist.Twist.run))


class ParseErrorTests(SynchronousTestCase):
    def test_malformed_status_raises_parse_error(self) -> None:
        """If a backend sends a malformed status line, then the client parser fails with ParseError."""
        protocol = HTTP11ClientProtocol()
        protocol.makeConnection(StringTransport())
        request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None)
        answer = protocol.request(request)
        protocol.dataReceived(b"NOT HTTP\r\n\r\n")
        failure = self.failureResultOf(answer)
        self.assertTrue(any(reason.check(ParseError) for reason in failure.value.reasons))


class PoolTests(SynchronousTestCase):
    def test_pool_bookkeeping(self) -> None:
        """If a pool is made, then it has the _connections and _timeouts dicts and the _putConnection/_removeConnection methods RetirablePool uses."""
        pool = RetirablePool(MemoryReactorClock())
        self.assertEqual((pool._connections, pool._timeouts), ({}, {}))
        put = inspect.signature(client.HTTPConnectionPool._putConnection)
        remove = inspect.signature(client.HTTPConnectionPool._removeConnection)
        self.assertEqual(list(put.parameters), ["self", "key", "connection"])
        self.assertEqual(list(remove.parameters), ["self", "key", "connection"])

    def test_remove_connection_forgets_and_closes(self) -> None:
        """If the pool removes an idle connection, then it leaves both dicts and its transport is closed."""
        pool = RetirablePool(MemoryReactorClock())
        connection = HTTP11ClientProtocol()
        transport = StringTransport()
        connection.makeConnection(transport)
        pool._putConnection(b"key", connection)
        self.assertEqual(pool.idle_connections(), 1)
        pool._removeConnection(b"key", connection)
        self.assertEqual((pool._connections.get(b"key", []), pool._timeouts), ([], {}))
        self.assertTrue(transport.disconnecting)

    def test_client_factory(self) -> None:
        """If the pool connects, then it builds HTTP11ClientProtocols with client._HTTP11ClientFactory(quiescentCallback, metadata)."""
        self.assertIs(RetirablePool._factory.__mro__[1], client._HTTP11ClientFactory)
        factory = RetirablePool._factory(lambda protocol: None, b"key")
        self.assertIsInstance(factory.buildProtocol(None), HTTP11ClientProtocol)

    def test_client_factory_arguments(self) -> None:
        """If the pool makes its factory, then it passes (quiescentCallback, metadata) positionally, and the protocol built with that callback calls it once its response is done."""
        self.assertEqual(
            list(inspect.signature(client._HTTP11ClientFactory.__init__).parameters),
            ["self", "quiescentCallback", "metadata"],
        )
        self.assertIn(
            "self._factory(quiescentCallback, repr(endpoint))",
            inspect.getsource(client.HTTPConnectionPool._newConnection),
        )
        quiet: list[HTTP11ClientProtocol] = []
        protocol = RetirablePool._factory(quiet.append, b"key").buildProtocol(None)
        self.assertIsInstance(protocol, _ClientProtocol)
        protocol.makeConnection(StringTransport())
        request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None, True)
        protocol.request(request)
        protocol.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual(quiet, [protocol])

    def test_request_construct(self) -> None:
        """If a client request is built with _construct, then it carries what it was given, and refuses a bad method before any connection is used."""
        headers = Headers({b"host": [b"h"]})
        request = ClientRequest._construct(b"GET", b"/x", headers, None, True)
        self.assertEqual((request.method, request.uri, request.persistent), (b"GET", b"/x", True))
        self.assertRaises(ValueError, ClientRequest._construct, b"G T", b"/", headers, None, True)


class ConnectionHeaderTests(SynchronousTestCase):
    def request(self) -> tuple[HTTP11ClientProtocol, list[object]]:
        protocol = HTTP11ClientProtocol()
        protocol.makeConnection(StringTransport())
        request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None, True)
        answers: list[object] = []
        protocol.request(request).addBoth(answers.append)
        return protocol, answers

    def test_request_sets_the_parser(self) -> None:
        """If a request is sent, then request() has set _parser to the HTTPClientParser that will read its response, with empty connHeaders."""
        protocol, _ = self.request()
        parser = protocol._parser
        assert isinstance(parser, HTTPClientParser), parser
        self.assertEqual(list(parser.connHeaders.getAllRawHeaders()), [])

    def test_connection_header_kept_in_conn_headers(self) -> None:
        """
        If a response has a Connection header, then its values are in the
        parser's connHeaders and not in the response's headers, which keep
        the headers it names; and once the response is complete the
        protocol has dropped _parser, but the parser still has them.
        """
        protocol, answers = self.request()
        parser = protocol._parser
        assert parser is not None
        protocol.dataReceived(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s3\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        [response] = answers
        self.assertEqual(response.headers.getRawHeaders(b"x-secret"), [b"s3"])  # type: ignore[attr-defined]
        self.assertFalse(response.headers.hasHeader(b"connection"))  # type: ignore[attr-defined]
        self.assertIsNone(protocol._parser)
        self.assertEqual(parser.connHeaders.getRawHeaders(b"connection"), [b"keep-alive, X-Secret"])

    def test_parser_still_set_when_quiescent(self) -> None:
        """If a response completes on a persistent connection, then the quiescent callback runs while _parser (and its connHeaders) is still set."""
        seen: list[object] = []

        def quiescent(protocol: HTTP11ClientProtocol) -> None:
            parser = protocol._parser
            seen.append(parser.connHeaders.getRawHeaders(b"connection") if parser is not None else "no parser")

        protocol = HTTP11ClientProtocol(quiescent)
        protocol.makeConnection(StringTransport())
        request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None, True)
        protocol.request(request)
        protocol.dataReceived(b"HTTP/1.1 200 OK\r\nConnection: Close, X-A\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(seen, [[b"Close, X-A"]])

    def test_informational_response_resets_conn_headers(self) -> None:
        """If a 1xx response comes first, then by the time the final response arrives connHeaders holds only the final response's headers."""
        protocol, answers = self.request()
        parser = protocol._parser
        assert parser is not None
        protocol.dataReceived(b"HTTP/1.1 100 Continue\r\nConnection: X-Early\r\n\r\n")
        self.assertEqual(answers, [])
        protocol.dataReceived(
            b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertEqual(len(answers), 1)
        self.assertEqual(parser.connHeaders.getRawHeaders(b"connection"), [b"X-Secret"])


class IdleConnectionTests(SynchronousTestCase):
    def test_retrying_wrapper(self) -> None:
        """If the pool hands out an idle connection, then getConnection wraps it in _RetryingHTTP11ClientProtocol(connection, newConnection), newConnection calling _newConnection(key, endpoint)."""
        self.assertEqual(
            list(inspect.signature(client._RetryingHTTP11ClientProtocol.__init__).parameters),
            ["self", "clientProtocol", "newConnection"],
        )
        self.assertEqual(
            list(inspect.signature(client.HTTPConnectionPool._newConnection).parameters),
            ["self", "key", "endpoint"],
        )
        source = inspect.getsource(client.HTTPConnectionPool.getConnection)
        for step in (
            "connections.pop(0)",
            "del self._timeouts[connection]",
            'connection.state == "QUIESCENT"',
            "self.retryAutomatically",
            "_RetryingHTTP11ClientProtocol(",
        ):
            self.assertIn(step, source)

    def test_idle_connection_taken_as_get_connection_takes_it(self) -> None:
        """If an idle connection is taken without a Deferred, then it leaves the pool and comes wrapped, as from getConnection."""
        pool = RetirablePool(MemoryReactorClock())
        connection = _ClientProtocol()
        connection.makeConnection(StringTransport())
        pool._putConnection(b"key", connection)
        taken = pool.idle_connection(b"key", object())  # type: ignore[arg-type]
        assert isinstance(taken, client._RetryingHTTP11ClientProtocol)
        self.assertIs(taken._clientProtocol, connection)
        self.assertEqual((pool.idle_connections(), pool._timeouts), (0, {}))
        self.assertIsNone(pool.idle_connection(b"key", object()))  # type: ignore[arg-type]


class ResponseHeadTests(SynchronousTestCase):
    def test_parser_state(self) -> None:
        """If a request is sent, then its parser waits in STATUS with LineReceiver's _buffer, _busyReceiving, line_mode and MAX_LENGTH, and _everReceivedData unset."""
        protocol = HTTP11ClientProtocol()
        protocol.makeConnection(StringTransport())
        protocol.request(ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None, True))
        parser = protocol._parser
        assert parser is not None
        self.assertEqual(
            (parser.state, parser._buffer, parser._busyReceiving, parser.line_mode, parser.MAX_LENGTH),
            (STATUS, b"", False, 1, 16384),
        )
        self.assertFalse(parser._everReceivedData)
        self.assertEqual(HEADER, "HEADER")

    def test_give_up(self) -> None:
        """If the parser raises, then HTTP11ClientProtocol.dataReceived hands the failure to _giveUp(failure)."""
        self.assertEqual(list(inspect.signature(HTTP11ClientProtocol._giveUp).parameters), ["self", "reason"])
        self.assertIn("self._giveUp(Failure())", inspect.getsource(HTTP11ClientProtocol.dataReceived))


class BodylessRequestTests(SynchronousTestCase):
    def test_request_state_once_written(self) -> None:
        """
        If a request without a body is sent, then request() leaves the
        protocol WAITING with _finishedRequest, _currentRequest,
        _transportProxy (a TransportProxyProducer of the transport),
        _parser, an HTTPClientParser(request, finisher) connected to that
        proxy, and _responseDeferred, the parser's own, as
        _ClientProtocol._send_bodyless sets them itself.
        """
        protocol = HTTP11ClientProtocol()
        transport = StringTransport()
        protocol.makeConnection(transport)
        request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None, True)
        finished = protocol.request(request)
        parser = protocol._parser
        assert isinstance(parser, HTTPClientParser)
        self.assertEqual(protocol._state, "WAITING")
        self.assertIs(protocol._finishedRequest, finished)
        self.assertIs(protocol._currentRequest, request)
        self.assertIsInstance(protocol._transportProxy, TransportProxyProducer)
        self.assertIs(protocol._transportProxy._producer, transport)
        self.assertIs(parser.transport, protocol._transportProxy)
        self.assertIs(protocol._responseDeferred, parser._responseDeferred)
        self.assertEqual(
            list(inspect.signature(HTTPClientParser.__init__).parameters), ["self", "request", "finisher"]
        )

    def test_parser_fires_its_own_deferred(self) -> None:
        """
        If a parser is made, then it holds an unfired _responseDeferred,
        which connecting it keeps, a response fires with the response and a
        connection lost before one fails with ResponseNeverReceived.
        """
        request = ClientRequest._construct(b"GET", b"/", Headers({b"host": [b"h"]}), None, True)
        answered = HTTPClientParser(request, lambda rest: None)
        responding = answered._responseDeferred
        self.assertFalse(responding.called)
        answered.makeConnection(StringTransport())
        self.assertIs(answered._responseDeferred, responding)
        outcomes: list[object] = []
        responding.addBoth(outcomes.append)
        answered.dataReceived(b"HTTP/1.1 204 No Content\r\n\r\n")
        self.assertEqual([outcome.code for outcome in outcomes], [204])  # type: ignore[attr-defined]
        lost = HTTPClientParser(request, lambda rest: None)
        lost.makeConnection(StringTransport())
        failures: list[Failure] = []
        lost._responseDeferred.addErrback(failures.append)
        lost.connectionLost(Failure(ConnectionDone()))
        self.assertIsInstance(failures[0].value, ResponseNeverReceived)

    def test_cancel_once_written(self) -> None:
        """If the caller cancels a request already written, then Twisted aborts the connection and disconnects the parser with CancelledError."""
        source = inspect.getsource(HTTP11ClientProtocol.request)
        self.assertIn("self.transport.abortConnection()", source)
        self.assertIn("self._disconnectParser(Failure(CancelledError()))", source)

    def test_write_to_without_body(self) -> None:
        """If a request has no body, then writeTo writes its head at once (Content-Length: 0 for PUT and POST) and returns a fired Deferred."""
        source = inspect.getsource(ClientRequest.writeTo)
        self.assertIn('if self.method in (b"PUT", b"POST"):', source)
        self.assertIn("return succeed(None)", source)


class WholeRequestHeadTests(SynchronousTestCase):
    """Pins what L{sillyproxy._request_head} relies on in HTTPChannel and LineReceiver."""

    def channel(self) -> HTTPChannel:
        channel = HTTPChannel()
        channel.requestFactory = _HeldRequest
        channel.makeConnection(StringTransport())
        return channel

    def test_waiting_for_a_request(self) -> None:
        """If a channel waits for a request, then its first-line flag is 1, no header is held back, no decoder is chosen and the line buffer is empty and idle."""
        channel = self.channel()
        self.assertEqual(
            (
                channel._HTTPChannel__first_line,  # type: ignore[attr-defined]
                channel._HTTPChannel__header,  # type: ignore[attr-defined]
                channel._transferDecoder,
                channel._buffer,
                channel._busyReceiving,
                channel.paused,
                channel.line_mode,
            ),
            (1, b"", None, b"", False, False, 1),
        )

    def test_state_for_a_received_head(self) -> None:
        """If a head is read line by line, then the channel records its size, request line and header count where the one-pass reading sets them, and makes the request with its queue position."""
        channel = self.channel()
        channel.dataReceived(b"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n")
        self.assertEqual(channel._HTTPChannel__first_line, 0)  # type: ignore[attr-defined]
        self.assertEqual((channel._command, channel._path, channel._version), (b"GET", b"/x", b"HTTP/1.1"))
        self.assertEqual(channel._receivedHeaderSize, len(b"GET /x HTTP/1.1Host: aX-A: b"))
        # The last header line is held back until the next line.
        self.assertEqual(channel._receivedHeaderCount, 1)
        self.assertEqual(channel._HTTPChannel__header, b"X-A: b")  # type: ignore[attr-defined]
        [request] = channel.requests
        self.assertEqual(request.queued, 0)
        self.assertFalse(INonQueuedRequestFactory.providedBy(Request))
        channel.dataReceived(b"\r\n")
        self.assertEqual(request.requestHeaders._rawHeaders, {b"Host": [b"a"], b"X-A": [b"b"]})
        request.finish()
        self.assertEqual(channel._HTTPChannel__first_line, 1)  # type: ignore[attr-defined]


class ServerRequestStateTests(SynchronousTestCase):
    def test_request_private_state(self) -> None:
        """If a server Request is made, then it is not _disconnected, not in a faked HEAD and has no _encoder, until its connection is lost."""
        channel = HTTPChannel()
        channel.site = Site(Resource())  # type: ignore[attr-defined]
        channel.makeConnection(StringTransport())
        request = ServerRequest(channel, False)
        self.assertEqual((request._disconnected, request._inFakeHead, request._encoder), (False, False, None))
        request.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(request._disconnected)


class EPollReactorTests(SynchronousTestCase):
    def test_private_state(self) -> None:
        """If an epoll reactor is made, then it has the poller, the fd-to-selectable dict, the read set and the event bits install_fast_poll reads."""
        reactor = EPollReactor()
        self.addCleanup(reactor._poller.close)
        self.assertIsInstance(reactor._selectables, dict)
        self.assertIsInstance(reactor._reads, set)
        self.assertTrue(callable(reactor._poller.poll))
        self.assertEqual(reactor._POLL_IN, select.EPOLLIN)
        self.assertEqual(reactor._POLL_OUT, select.EPOLLOUT)
        self.assertEqual(reactor._POLL_DISCONNECTED, select.EPOLLHUP | select.EPOLLERR)
        self.assertEqual(
            list(inspect.signature(reactor._doReadOrWrite).parameters), ["selectable", "fd", "event"]
        )
        self.assertEqual(
            list(inspect.signature(reactor._disconnectSelectable).parameters),
            ["selectable", "why", "isRead", "faildict"],
        )

    def test_main_loop_calls_do_iteration(self) -> None:
        """If the reactor runs, then each round calls self.doIteration(timeout), which an instance attribute can stand in for."""
        self.assertIn("self.doIteration(t)", inspect.getsource(ReactorBase.mainLoop))
        self.assertIs(EPollReactor.doIteration, EPollReactor.doPoll)


class TransportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)

    def test_write_buffer_attributes(self) -> None:
        """If a TCP connection is written to, then Twisted holds the data in _tempDataBuffer/_tempDataLen until doWrite, with dataBuffer empty: what _FewerSyscalls reads and fills."""
        connection = tcp.Connection(self.ours, Protocol(), MemoryReactorClock())
        self.assertEqual(
            (connection._tempDataBuffer, connection._tempDataLen, connection.dataBuffer), ([], 0, b"")
        )
        self.assertEqual(
            (connection._writeDisconnected, connection._writeDisconnecting, connection.TLS),
            (False, False, False),
        )
        connection.connected = True
        connection.write(b"abc")
        self.assertEqual((connection._tempDataBuffer, connection._tempDataLen), ([b"abc"], 3))

    def test_port_and_connector_hooks(self) -> None:
        """If the transports are built, then Twisted calls Port._fromListeningDescriptor(reactor, fd, family, factory), Connector._makeTransport() and Client(host, port, bindAddress, connector, reactor)."""
        self.assertEqual(
            list(inspect.signature(tcp.Port._fromListeningDescriptor).parameters),
            ["reactor", "fd", "addressFamily", "factory"],
        )
        self.assertIn("_makeTransport", vars(tcp.Connector))
        self.assertEqual(
            list(inspect.signature(tcp.Client.__init__).parameters),
            ["self", "host", "port", "bindAddress", "connector", "reactor"],
        )
        self.assertIs(tcp.Port.transport, tcp.Server)


class HTTP2Tests(SynchronousTestCase):
    """What sillyproxy._http2 assumes of twisted.web._http2."""

    def test_stream_makes_its_request_after_its_identity(self) -> None:
        """If an H2Stream is built, then it calls requestFactory(stream, queued=False) once streamID, site and _conn are set, before it reads the headers; and it keeps the request as _request, the method and path as command and path."""
        from twisted.web._http2 import H2Stream

        seen: list[tuple[object, ...]] = []

        class FakeRequest:
            def __init__(self, stream: H2Stream, queued: bool) -> None:
                seen.append((stream.streamID, stream.site, stream._conn, queued, hasattr(stream, "command")))
                self.requestHeaders = Headers()

            def gotLength(self, length: object) -> None:
                pass

            def parseCookies(self) -> None:
                pass

        site, connection = object(), object()
        stream = H2Stream(7, connection, [(b":method", b"GET"), (b":path", b"/x")], FakeRequest, site, None)
        self.assertEqual(seen, [(7, site, connection, False, True)])
        self.assertIsInstance(stream._request, FakeRequest)
        self.assertEqual((stream.command, stream.path), (b"GET", b"/x"))

    def test_connection_attributes(self) -> None:
        """If an H2Connection is made, then it has the streams dict, the h2 connection (close_connection, data_to_send) and _requestDone that ProxyH2Connection uses, and takes site, factory, requestFactory and timeOut as attributes."""
        from twisted.web._http2 import H2Connection

        connection = H2Connection(MemoryReactorClock())
        self.assertEqual(connection.streams, {})
        self.assertTrue(callable(connection.conn.close_connection))
        self.assertTrue(callable(connection.conn.data_to_send))
        self.assertEqual(list(inspect.signature(H2Connection._requestDone).parameters), ["self", "streamID"])
        for name in ("site", "factory", "timeOut"):
            self.assertTrue(hasattr(H2Connection, name), name)
        self.assertEqual(
            list(inspect.signature(H2Connection.connectionLost).parameters),
            ["self", "reason", "_cancelTimeouts"],
        )
