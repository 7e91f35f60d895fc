"""The twisted.web resource that forwards each request to the colour chosen for it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import datetimeToString
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ._accesslog import AccessLog, AccessRecord
from ._config import Backend
from ._failures import UpstreamFailure, classify
from ._headers import for_backend, for_client
from ._routing import Router
from ._site import ProxyRequest
from ._target import join_target, origin_form
from ._relay import BodyRelay
from ._upload import ReceivedBodyProducer

__all__ = ["ForwardingResource"]

_log = Logger(namespace="sillyproxy.forward")

# Responses that never carry a body, so never carry a Content-Length we made.
_BODYLESS_STATUS = frozenset({204, 304})


def _client_ip(address: IAddress) -> bytes | None:
    host = getattr(address, "host", None)
    return host.encode("ascii") if isinstance(host, str) else None


def _client_label(address: IAddress) -> str:
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else "-"


def _copy_into(headers: Headers, pairs: Iterable[tuple[bytes, Sequence[bytes]]]) -> None:
    """
    Set C{pairs} on C{headers}, whose names are already in the canonical
    case and whose values are already free of line breaks: they were read
    from another L{Headers}, or made by L{for_backend}.  setRawHeaders would
    check and convert each again, a noticeable share of a proxied request.
    Headers keeps them in C{_rawHeaders} in this form (Twisted 24.7 on).
    """
    headers._rawHeaders.update(pairs)


def _has_body(request: Request) -> bool:
    headers = request.requestHeaders
    return headers.hasHeader(b"content-length") or headers.hasHeader(
        b"transfer-encoding"
    )


class _HTTPDate:
    """The current HTTP date, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def __call__(self, seconds: float) -> bytes:
        second = int(seconds)
        if second != self._second:
            self._second = second
            self._text = datetimeToString(second)
        return self._text


http_date = _HTTPDate()


def write_plain_error(request: Request, status: int, message: str) -> None:
    """Answer C{request} with C{status} and a one-line text body."""
    body = message.encode("utf-8") + b"\n"
    request.setResponseCode(status)
    request.responseHeaders.setRawHeaders(b"date", [datetimeToString()])
    request.responseHeaders.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
    request.responseHeaders.setRawHeaders(b"content-length", [b"%d" % len(body)])
    request.write(body)
    request.finish()


class _NoMetrics:
    """Stands in when nothing is counted."""

    def request_started(self, color: str) -> None:
        pass

    def request_ended(self, color: str) -> None:
        pass

    def upstream_failed(self, color: str, reason: str) -> None:
        pass


class ForwardingResource(Resource):
    """
    Forward every request to a backend chosen by weight.

    @param router: picks the colour for each request and holds, for each
        colour, what sends its requests (in production an L{Upstream}
        balancing over the backend's addresses).
    @param clock: times each request for the access log.
    @param access_log: receives one L{AccessRecord} per request; if None,
        a text L{AccessLog} on standard output.
    @param cooperator: schedules the upload of large request bodies; if
        None, a new one on the global reactor.
    @param response_timeout: seconds the backend has to send the response
        headers before the client gets a 504.
    @param idle_timeout: seconds a backend may stall in the middle of a body
        (while the client is keeping up) before the client connection is
        aborted.
    @param metrics: told when requests start and end and backends fail
        (a L{ProxyMetrics}); if None, nothing is counted.
    """

    isLeaf = True

    def __init__(
        self,
        router: Router,
        clock: IReactorTime,
        access_log: Callable[[AccessRecord], None] | None = None,
        cooperator: Cooperator | None = None,
        response_timeout: float = 60.0,
        idle_timeout: float = 60.0,
        metrics: object | None = None,
    ) -> None:
        super().__init__()
        self._metrics = metrics if metrics is not None else _NoMetrics()
        self._cooperator = cooperator if cooperator is not None else Cooperator()
        self._router = router
        self._clock = clock
        self._response_timeout = response_timeout
        self._idle_timeout = idle_timeout
        # Requests waiting for response headers, and response bodies still
        # arriving, checked by one sweep rather than a timer each.
        self.waiting: set[_Exchange] = set()
        self.streaming: set[BodyRelay] = set()
        self._sweep: IDelayedCall | None = None
        self._access_log = access_log if access_log is not None else AccessLog(clock)

    def sweep_for_slow_responses(self) -> None:
        """Keep one timer running while any request waits for its response headers or body."""
        if self._sweep is None and (self.waiting or self.streaming):
            # Enforced to within a quarter of the timeout, or a second.
            interval = min(1.0, self._response_timeout / 4, self._idle_timeout / 4)
            self._sweep = self._clock.callLater(interval, self._check_waiting)

    def _check_waiting(self) -> None:
        self._sweep = None
        now = self._clock.seconds()
        for exchange in [e for e in self.waiting if e.response_deadline <= now]:
            exchange.response_too_slow()
        for relay in list(self.streaming):
            relay.check_stalled(now)
        self.sweep_for_slow_responses()

    def render(self, request: Request) -> bytes | int:
        started = self._clock.seconds()
        # The proxy speaks for the backend: it neither advertises itself nor
        # invents a Content-Type the backend did not send.  (A ProxyRequest
        # sets no Server or Date to begin with.)
        if not isinstance(request, ProxyRequest):
            request.responseHeaders.removeHeader(b"server")
            request.responseHeaders.removeHeader(b"date")
        request.defaultContentType = None
        state = _Exchange(self, request, started)
        state.start()
        return NOT_DONE_YET


# RFC 9110 section 9.2.2: sending these twice has the effect of sending once.
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

_ALLOW = b"GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"


class _Exchange:
    """One request's trip through the proxy, from choice to access log."""

    def __init__(self, resource: ForwardingResource, request: Request, started: float) -> None:
        self._resource = resource
        self._request = request
        self._started = started
        self._backend: Backend | None = None
        self._target = b""
        self._outcome = ""
        self._pending: Deferred[IResponse] | None = None
        self._relay: BodyRelay | None = None
        # When the backend must have sent its response headers by (clock
        # seconds), while waiting for them; the resource's sweep enforces it.
        self.response_deadline: float | None = None
        self._timed_out = False
        self._tried: list[str] = []

    def start(self) -> None:
        request = self._request
        # Told when the request finishes or its client leaves, as a Deferred
        # from notifyFinish would be, without making one per request.
        request.notifications.append(self)  # type: ignore[arg-type]

        if request.method == b"CONNECT":
            request.responseHeaders.setRawHeaders(b"allow", [_ALLOW])
            write_plain_error(request, 405, "CONNECT is not supported")
            return
        target = origin_form(request.uri)
        if target is None:
            write_plain_error(request, 400, "request target must be a path or an http(s) URL")
            return
        self._target = target
        router = self._resource._router
        backend = router.choose()
        if backend is None:
            if router.configured:
                self._no_healthy_backend()
            else:
                write_plain_error(request, 502, "no backends available")
            return
        self._send(backend)

    def _no_healthy_backend(self) -> None:
        self._outcome = "no healthy backends"
        # Ejections last 10 s or more; a client that waits a moment may find
        # a backend back, or the next proxy replica in better shape.
        self._request.responseHeaders.setRawHeaders(b"retry-after", [b"1"])
        write_plain_error(self._request, 503, "no healthy backends")

    def _send(self, backend: Backend) -> None:
        request = self._request
        metrics = self._resource._metrics
        if self._backend is not None:
            metrics.request_ended(self._backend.color)
        metrics.request_started(backend.color)
        self._backend = backend
        self._tried.append(backend.color)
        headers = Headers()
        _copy_into(
            headers,
            for_backend(
                request.requestHeaders.getAllRawHeaders(),
                backend.color.encode("ascii"),
                _client_ip(request.getClientAddress()),
                b"https" if request.isSecure() else b"http",
            ),
        )
        body = None
        if _has_body(request):
            # request.content is already on disk past 100 KB; it is streamed
            # from there in chunks rather than read whole.
            request.content.seek(0)
            body = ReceivedBodyProducer(request.content, self._resource._cooperator)
        url = backend.origin + join_target(backend.base_path, self._target)
        agent = self._resource._router.agents[backend.color]
        self._pending = agent.request(request.method, url, headers, body)
        resource = self._resource
        self.response_deadline = resource._clock.seconds() + resource._response_timeout
        resource.waiting.add(self)
        resource.sweep_for_slow_responses()
        self._pending.addCallbacks(self._respond, self._fail)

    def response_too_slow(self) -> None:
        """The sweep found the response headers overdue: cancel, answer 504."""
        self._stop_timer()
        if self._pending is not None:
            self._timed_out = True
            self._pending.cancel()

    def _stop_timer(self) -> None:
        if self.response_deadline is not None:
            self.response_deadline = None
            self._resource.waiting.discard(self)

    def _respond(self, response: IResponse) -> None:
        self._pending = None
        self._stop_timer()
        request = self._request
        resource = self._resource
        now = resource._clock.seconds()
        request.setResponseCode(response.code, response.phrase)
        outgoing = request.responseHeaders
        _copy_into(outgoing, for_client(response.headers.getAllRawHeaders()))
        if not response.headers.hasHeader(b"date"):
            # RFC 9110 section 6.6.1: a recipient with a clock adds Date to a
            # response it forwards without one.
            outgoing.setRawHeaders(b"date", [http_date(now)])
        if (
            response.length is not UNKNOWN_LENGTH
            and request.method != b"HEAD"
            and response.code not in _BODYLESS_STATUS
        ):
            outgoing.setRawHeaders(b"content-length", [b"%d" % response.length])
        self._relay = BodyRelay(
            request, self._backend, self._set_outcome, resource.streaming, resource._idle_timeout
        )
        response.deliverBody(self._relay)
        # A body that arrived with the headers has already been relayed.
        self._relay.watch_for_stalls(now)
        resource.sweep_for_slow_responses()

    def _fail(self, failure: Failure) -> None:
        self._pending = None
        self._stop_timer()
        request = self._request
        if request.channel is None:
            # We cancelled it because the client left; nothing to answer.
            return
        if self._timed_out:
            problem = UpstreamFailure(504, "backend did not answer in time", "timeout")
        else:
            problem = classify(failure)
        backend = self._backend
        self._resource._metrics.upstream_failed(backend.color, problem.kind)
        _log.warn(
            "{color} backend {url} failed: {message} ({cause})",
            color=backend.color,
            url=backend.url,
            message=problem.message,
            cause=failure.getErrorMessage(),
        )
        retry = self._retry_backend(problem)
        if retry is not None:
            self._outcome = "failover"
            self._send(retry)
            return
        self._outcome = problem.message
        if problem.status == 503:
            self._no_healthy_backend()
        else:
            write_plain_error(request, problem.status, problem.message)

    def _retry_backend(self, problem: UpstreamFailure) -> Backend | None:
        """
        Where to send the request again, or None.  Once only; and a request
        that may have reached the backend only if sending it twice is
        harmless (an idempotent method, no body).
        """
        if len(self._tried) > 1 or self._timed_out:
            return None
        request = self._request
        if problem.maybe_sent and (request.method not in _IDEMPOTENT or _has_body(request)):
            return None
        router = self._resource._router
        current = self._backend
        upstream = router.agents[current.color]
        # Another address of the same colour if there is one, else another colour.
        if len(getattr(upstream, "addresses", ())) > 1 and router.available(current):
            return current
        return router.choose(exclude=self._tried)

    def _set_outcome(self, outcome: str) -> None:
        # Only the body relay reports one: the backend failed mid-body.
        self._outcome = outcome
        kind = "timeout" if "stalled" in outcome else "reset"
        self._resource._metrics.upstream_failed(self._backend.color, kind)

    def callback(self, result: None) -> None:
        """The response has been sent."""
        self._log_finished(result)

    def errback(self, reason: Failure) -> None:
        """The client connection was lost first."""
        self._log_finished(reason)

    def _log_finished(self, result: object) -> None:
        request = self._request
        self._stop_timer()
        if self._backend is not None:
            self._resource._metrics.request_ended(self._backend.color)
        if isinstance(result, Failure):
            if self._pending is not None:
                # The client is gone: abandon the backend request, which
                # closes its connection rather than pooling a half-read one.
                pending, self._pending = self._pending, None
                pending.cancel()
            elif self._relay is not None:
                self._relay.abandon()
            if not self._outcome or self._outcome == "failover":
                self._outcome = "client closed"
        self._resource._access_log(
            AccessRecord(
                time=self._started,
                client=_client_label(request.getClientAddress()),
                method=request.method,
                target=request.uri,
                color=self._backend.color if self._backend else "-",
                status=request.code,
                body_bytes=request.sentLength,
                duration=self._resource._clock.seconds() - self._started,
                outcome=self._outcome,
            )
        )
