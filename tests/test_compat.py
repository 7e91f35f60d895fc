"""
Pins every private Twisted name sillyproxy relies on (see _compat.py,
_pool.py and _transport.py): a Twisted release that changes one fails the
test named for it, instead of corrupting traffic.
"""

from __future__ import annotations

import inspect
import socket

from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import client
from twisted.web._newclient import HTTP11ClientProtocol
from twisted.web._newclient import Request as ClientRequest
from twisted.web.http_headers import Headers

from sillyproxy._compat import ParseError, clear_exit_signal, copy_canonical_headers
from sillyproxy._pool import RetirablePool


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

    def test_request_construct(self) -> None:
        """If a client request is built with _construct, then it carries what it was given, and refuses a bad method before any connection is used."""
        headers = Headers({b"host": [b"h"]})
        request = ClientRequest._construct(b"GET", b"/x", headers, None, True)
        self.assertEqual((request.method, request.uri, request.persistent), (b"GET", b"/x", True))
        self.assertRaises(ValueError, ClientRequest._construct, b"G T", b"/", headers, None, True)


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
