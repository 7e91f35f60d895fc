"""In-memory tests of ProxyService: listening on several endpoints, draining them all, and SIGHUP."""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable
from unittest import SkipTest

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from sillyproxy._lifecycle import ProxyService
from sillyproxy._site import ProxySite


class FakePort:
    """A listening port that records whether it was stopped."""

    def __init__(self) -> None:
        self.stopped = False

    def stopListening(self) -> None:
        self.stopped = True


class FakeEndpoint:
    """A server endpoint that records what listened on it, or fails to listen."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.factories: list[IProtocolFactory] = []
        self.port = FakePort()

    def listen(self, factory: IProtocolFactory) -> Deferred[IListeningPort]:
        if self.error is not None:
            return fail(self.error)
        self.factories.append(factory)
        return succeed(self.port)  # type: ignore[arg-type]


class BusyChannel:
    """A connection in the middle of a request, which the drain waits for."""

    busy = True
    persistent = True
    requests: list[object] = []


class ImmediateThreads:
    """callFromThread that runs the call at once, recording that it went through here."""

    def __init__(self) -> None:
        self.calls = 0

    def callFromThread(self, f: Callable[..., object], *args: object, **kwargs: object) -> None:
        self.calls += 1
        f(*args, **kwargs)


def make_service(
    endpoints: list[tuple[FakeEndpoint, str]],
    on_sighup: Callable[[], object] | None = None,
    threads: ImmediateThreads | None = None,
) -> tuple[ProxyService, ProxySite, MemoryReactorClock]:
    clock = MemoryReactorClock()
    site = ProxySite(Resource(), reactor=clock)
    service = ProxyService(
        endpoints,  # type: ignore[arg-type]
        site,
        [],
        drain_timeout=5,
        clock=clock,
        on_sighup=on_sighup,
        threads=threads,  # type: ignore[arg-type]
    )
    return service, site, clock


class ListenTests(SynchronousTestCase):
    def test_every_endpoint_gets_the_same_site(self) -> None:
        """If there are several listen endpoints, then the service listens on each with the one proxy site, and the start-up line names them all."""
        plain, tls = FakeEndpoint(), FakeEndpoint()
        service, site, _ = make_service([(plain, "tcp:8080"), (tls, "ssl:8443:privateKey=k.pem")])
        with capturedLogs() as events:
            service.privilegedStartService()
            service.startService()
        self.assertEqual(plain.factories, [site])
        self.assertEqual(tls.factories, [site])
        self.assertEqual(service.ports, [plain.port, tls.port])
        messages = [e["log_format"].format(**e) for e in events]
        self.assertIn("sillyproxy listening on tcp:8080 ssl:8443:privateKey=k.pem", messages)

    def test_listening_twice_is_harmless(self) -> None:
        """If twistd calls privilegedStartService and then startService, then each endpoint is listened on once."""
        endpoint = FakeEndpoint()
        service, _, _ = make_service([(endpoint, "tcp:8080")])
        service.privilegedStartService()
        service.startService()
        self.assertEqual(len(endpoint.factories), 1)

    def test_a_listener_that_fails_stops_start_up(self) -> None:
        """If one of several endpoints cannot listen, then start-up ends with status 1 and a message naming that endpoint."""
        good, bad = FakeEndpoint(), FakeEndpoint(OSError("Address already in use"))
        service, _, _ = make_service([(good, "tcp:8080"), (bad, "tcp:8081")])
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        exit = self.assertRaises(SystemExit, service.privilegedStartService)
        self.assertEqual(exit.code, 1)
        self.assertEqual(stderr.getvalue(), "sillyproxy: cannot listen on tcp:8081: Address already in use\n")


class DrainTests(SynchronousTestCase):
    def test_drain_stops_every_listener(self) -> None:
        """If the service stops, then it stops listening on every endpoint, marks the site draining, and the drain completes."""
        endpoints = [(FakeEndpoint(), "tcp:8080"), (FakeEndpoint(), "tcp:8081"), (FakeEndpoint(), "unix:/s")]
        service, site, _ = make_service(endpoints)
        service.privilegedStartService()
        service.startService()
        stopped = service.stopService()
        self.assertTrue(site.draining)
        self.assertEqual([endpoint.port.stopped for endpoint, _ in endpoints], [True, True, True])
        self.assertIsNone(self.successResultOf(stopped))


class HangupTests(SynchronousTestCase):
    def setUp(self) -> None:
        if not hasattr(signal, "SIGHUP"):
            raise SkipTest("no SIGHUP on this platform")
        before = signal.getsignal(signal.SIGHUP)
        self.addCleanup(signal.signal, signal.SIGHUP, before)
        # What twistd leaves: SIGHUP's default action ends the process.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def test_sighup_reloads_through_the_reactor(self) -> None:
        """If SIGHUP arrives while the service runs, then on_sighup is called, handed over with callFromThread."""
        reloads: list[None] = []
        threads = ImmediateThreads()
        service, _, _ = make_service(
            [(FakeEndpoint(), "ssl:8443")], on_sighup=lambda: reloads.append(None), threads=threads
        )
        service.privilegedStartService()
        service.startService()
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual((len(reloads), threads.calls), (1, 1))
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(len(reloads), 2)

    def test_handler_is_removed_after_the_drain(self) -> None:
        """If the service has drained, then the SIGHUP handler it found at start is back."""
        service, _, _ = make_service(
            [(FakeEndpoint(), "tcp:8080")], on_sighup=lambda: None, threads=ImmediateThreads()
        )
        service.privilegedStartService()
        service.startService()
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), signal.SIG_IGN)
        self.successResultOf(service.stopService())
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_IGN)

    def test_sighup_during_the_drain_still_reloads(self) -> None:
        """If SIGHUP arrives while in-flight requests drain, then it reloads rather than ending the process."""
        reloads: list[None] = []
        service, site, clock = make_service(
            [(FakeEndpoint(), "tcp:8080")], on_sighup=lambda: reloads.append(None), threads=ImmediateThreads()
        )
        service.privilegedStartService()
        service.startService()
        site.channels.add(BusyChannel())  # type: ignore[arg-type]
        stopped = service.stopService()
        self.assertNoResult(stopped)
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertEqual(len(reloads), 1)

    def test_no_handler_without_on_sighup(self) -> None:
        """If nothing is to be done on SIGHUP, then the service leaves its handler alone."""
        service, _, _ = make_service([(FakeEndpoint(), "tcp:8080")])
        service.privilegedStartService()
        service.startService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), signal.SIG_IGN)
