"""The twisted.web resource that forwards each request to the colour chosen for it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from attrs import frozen
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.task import Cooperator
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ._accesslog import AccessLog, AccessRecord
from ._compat import copy_canonical_headers, header_key, header_values, set_header_values
from ._config import Backend
from ._failures import UpstreamFailure, classify
from ._headers import (
    Networks,
    connection_tokens,
    for_backend,
    for_client,
    is_trusted,
    new_request_id,
    real_client,
    request_id,
)
from ._mirror import Mirror
from ._outcome import Outcome
from ._pool import UpgradeClientProtocol
from ._relay import BodyRelay
from ._routing import Router
from ._site import ProxyRequest
from ._sweep import Sweep
from ._target import has_dot_segment, join_target, origin_form
from ._timestamps import http_date
from ._sticky import STICKY_OFF, StickyMode, cookie, new_key, set_cookie, valid_key, without_cookies
from ._tunnel import Switched, Tunnel, wants_upgrade
from .override import verify_pass
from ._upload import ReceivedBodyProducer

__all__ = ["ForwardingResource", "RequestCounter", "write_plain_error"]

_log = Logger(namespace="sillyproxy.forward")

# Framing and connection headers of a 101 that describe the HTTP/1.1
# exchange, not the tunnel; Upgrade and Connection pass.
_NOT_RELAYED_ON_SWITCH = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        # The proxy's own goes last.
        b"x-request-id",
    }
)

# How a request was routed, while it has not ended otherwise.
_ROUTED = frozenset({Outcome.FORWARDED, Outcome.FAILOVER, Outcome.STICKY, Outcome.OVERRIDE})

# The tester's override pass, as a request header or a cookie; taken off
# every request, overrides on or off.
OVERRIDE_COOKIE = b"sillyproxy-color"
_OVERRIDE_COOKIES = frozenset({OVERRIDE_COOKIE})

# A backend URL's path that joins nothing onto a target.
_NO_BASE_PATH = (b"", b"/")

# Responses that never carry a body, so never carry a Content-Length we made.
_BODYLESS_STATUS = frozenset({204, 304})

# RFC 9110 section 9.2.2: sending these twice has the effect of sending once
# (TRACE too, but it is refused).
_IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})

# Refused with 405: CONNECT would open a tunnel to wherever the client names,
# and TRACE would echo the request, cookies and all, back to a script.
_REFUSED_METHODS = frozenset({b"CONNECT", b"TRACE"})

# nginx's status for a request whose client closed the connection before
# the response began; logged and counted, never sent.
CLIENT_CLOSED_REQUEST = 499

# A reason phrase is relayed only as visible ASCII and spaces (RFC 9112
# section 4); anything else, a bare CR above all, could forge a header.
_PHRASE_BYTES = bytes(range(0x20, 0x7F))

_ALLOW = b"GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"

# The request and response headers read or set on every request, by the
# names Headers keeps them under (see sillyproxy._compat.header_values).
_CONNECTION = header_key(b"connection")
_CONTENT_LENGTH = header_key(b"content-length")
_COOKIE = header_key(b"cookie")
_DATE = header_key(b"date")
_HOST = header_key(b"host")
_OVERRIDE_HEADER = header_key(b"sillyproxy-color")
_REQUEST_ID = header_key(b"x-request-id")
_TRANSFER_ENCODING = header_key(b"transfer-encoding")
_UPGRADE = header_key(b"upgrade")
_USER_AGENT = header_key(b"user-agent")


def _client_host(address: IAddress) -> str | None:
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else None


def _header_text(request: Request, key: bytes) -> str:
    values = header_values(request.requestHeaders, key)
    if not values:
        return "-"
    return values[0].decode("ascii", "backslashreplace")


def _has_body(request: Request) -> bool:
    headers = request.requestHeaders
    if header_values(headers, _CONTENT_LENGTH) or header_values(headers, _TRANSFER_ENCODING):
        return True
    if request.clientproto != b"HTTP/2" or request.content is None:
        return False
    # HTTP/2 frames a body itself: a client may send one with neither header.
    content = request.content
    at = content.tell()
    size = content.seek(0, 2)
    content.seek(at)
    return size > 0


def write_plain_error(request: Request, status: int, message: str, now: float) -> None:
    """Answer C{request} with C{status} and a one-line text body, dated C{now}."""
    body = message.encode("utf-8") + b"\n"
    request.setResponseCode(status)
    headers = request.responseHeaders
    headers.setRawHeaders(b"date", [http_date(now)])
    headers.setRawHeaders(b"content-type", [b"text/plain; charset=utf-8"])
    headers.setRawHeaders(b"content-length", [b"%d" % len(body)])
    request.write(body)
    request.finish()


class RequestCounter(Protocol):
    """What the forwarding resource tells the metrics as requests go (a L{ProxyMetrics})."""

    def request_started(self, color: str) -> None: ...

    def request_ended(self, color: str) -> None: ...

    def upstream_failed(self, color: str, reason: str) -> None: ...

    def retried(self, from_color: str, to_color: str) -> None: ...

    def tunnel_opened(self, color: str) -> None: ...

    def override_rejected(self) -> None: ...

    def tunnel_closed(self, color: str) -> None: ...


class _NoMetrics:
    """Stands in when nothing is counted."""

    def request_started(self, color: str) -> None:
        pass

    def request_ended(self, color: str) -> None:
        pass

    def upstream_failed(self, color: str, reason: str) -> None:
        pass

    def retried(self, from_color: str, to_color: str) -> None:
        pass

    def tunnel_opened(self, color: str) -> None:
        pass

    def override_rejected(self) -> None:
        pass

    def tunnel_closed(self, color: str) -> None:
        pass


def _no_failover_listener(color: str) -> None:
    pass


class _SlowResponseWatch:
    """
    The requests waiting for their response headers and the response bodies
    still arriving, checked by one sweep rather than a timer each.
    """

    def __init__(
        self,
        clock: IReactorTime,
        response_timeout: float,
        idle_timeout: float,
        send_timeout: float,
        tunnel_idle_timeout: float,
    ) -> None:
        self.waiting: set[_Exchange] = set()
        self.streaming: set[BodyRelay] = set()
        self.tunnels: set[Tunnel] = set()
        self._tunnel_idle_timeout = tunnel_idle_timeout
        # Enforced to within a quarter of the timeout, or a second.
        interval = min(
            1.0, response_timeout / 4, idle_timeout / 4, send_timeout / 4, tunnel_idle_timeout / 4
        )
        self._sweep = Sweep(clock, interval, self._check)

    def wake(self) -> None:
        if self.waiting or self.streaming or self.tunnels:
            self._sweep.wake()

    def _check(self, now: float) -> bool:
        for exchange in [e for e in self.waiting if e.response_deadline <= now]:  # type: ignore[operator]
            exchange.response_too_slow()
        for relay in list(self.streaming):
            relay.check_stalled(now)
        for tunnel in list(self.tunnels):
            tunnel.check_idle(now, self._tunnel_idle_timeout)
        return bool(self.waiting or self.streaming or self.tunnels)


@frozen
class _Settings:
    """What every exchange of one resource shares."""

    router: Router
    clock: IReactorTime
    cooperator: Cooperator
    metrics: RequestCounter
    on_finished: Callable[[AccessRecord], None]
    response_timeout: float
    idle_timeout: float
    send_timeout: float
    watch: _SlowResponseWatch
    generate_request_id: Callable[[], bytes]
    trusted_proxies: Networks
    sticky: StickyMode
    sticky_cookie: bytes
    sticky_max_age: int
    override_secret: bytes | None
    colors: tuple[str, ...]
    mirrors: tuple[Mirror, ...]
    on_failed_over: Callable[[str], None]


class ForwardingResource(Resource):
    """
    Forward every request to a backend chosen by weight.

    @param router: picks the colour for each request and holds, for each
        colour, the upstream that sends its requests.
    @param clock: times each request for the access log, dates error
        responses and enforces the timeouts.
    @param on_finished: told of every request once it has ended, with an
        L{AccessRecord}; if None, a text L{AccessLog} on standard output.
    @param cooperator: schedules the upload of large request bodies; if
        None, a new one on the global reactor.
    @param response_timeout: seconds the backend has to send the response
        headers before the client gets a 504.
    @param idle_timeout: seconds a backend may stall in the middle of a body
        (while the client is keeping up) before the client connection is
        aborted.
    @param send_timeout: seconds a response may go with the client taking
        none of it before both connections are closed.
    @param tunnel_idle_timeout: seconds an upgrade tunnel may carry no byte
        either way before it is closed.
    @param metrics: told when requests start and end, backends fail and
        requests are retried (a L{ProxyMetrics}); if None, nothing is counted.
    @param generate_request_id: makes the id of a request that came without
        a valid C{X-Request-Id}.
    @param trusted_proxies: the networks whose forwarding headers are
        believed (C{SILLYPROXY_TRUSTED_PROXIES}).
    @param sticky: what a user is known by, for sticky routing
        (C{SILLYPROXY_STICKY}); with C{sticky_cookie}, C{sticky_max_age}.
    @param override_secret: turns tester override passes on
        (C{SILLYPROXY_OVERRIDE_SECRET}).
    @param mirrors: the colours that get copies of other colours' requests
        (C{C_MIRROR}).
    @param on_failed_over: told the colour whose attempt failed when a
        request is sent on to another colour, which counts against the first.
    """

    isLeaf = True

    def __init__(
        self,
        router: Router,
        clock: IReactorTime,
        on_finished: Callable[[AccessRecord], None] | None = None,
        cooperator: Cooperator | None = None,
        response_timeout: float = 60.0,
        idle_timeout: float = 60.0,
        send_timeout: float = 60.0,
        tunnel_idle_timeout: float = 3600.0,
        metrics: RequestCounter | None = None,
        generate_request_id: Callable[[], bytes] = new_request_id,
        trusted_proxies: Networks = (),
        sticky: StickyMode = STICKY_OFF,
        sticky_cookie: bytes = b"sillyproxy",
        sticky_max_age: int = 2592000,
        override_secret: bytes | None = None,
        mirrors: Sequence[Mirror] = (),
        on_failed_over: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self._settings = _Settings(
            router=router,
            clock=clock,
            cooperator=cooperator if cooperator is not None else Cooperator(),
            metrics=metrics if metrics is not None else _NoMetrics(),
            on_finished=on_finished if on_finished is not None else AccessLog(clock),
            response_timeout=response_timeout,
            idle_timeout=idle_timeout,
            send_timeout=send_timeout,
            watch=_SlowResponseWatch(
                clock, response_timeout, idle_timeout, send_timeout, tunnel_idle_timeout
            ),
            generate_request_id=generate_request_id,
            trusted_proxies=trusted_proxies,
            sticky=sticky,
            sticky_cookie=sticky_cookie,
            sticky_max_age=sticky_max_age,
            override_secret=override_secret,
            colors=tuple(b.color for b in router.backends),
            mirrors=tuple(mirrors),
            on_failed_over=on_failed_over if on_failed_over is not None else _no_failover_listener,
        )

    def render(self, request: Request) -> bytes | int:
        # The proxy speaks for the backend: it invents no Content-Type (and
        # a ProxyRequest sets no Server or Date).
        request.defaultContentType = None
        # Served by ProxySite, whose requests are ProxyRequests.
        _Exchange(self._settings, cast(ProxyRequest, request)).start()
        return NOT_DONE_YET


class _Exchange:
    """One request's trip through the proxy, from choice to access log."""

    def __init__(self, settings: _Settings, request: ProxyRequest) -> None:
        self._settings = settings
        self._request = request
        self._started = settings.clock.seconds()
        peer = self._client_host = _client_host(request.getClientAddress())
        # Whether the peer is a proxy whose forwarding headers we believe.
        self._trusted = bool(settings.trusted_proxies) and is_trusted(
            peer, settings.trusted_proxies
        )
        self._request_id = request_id(
            header_values(request.requestHeaders, _REQUEST_ID),
            settings.generate_request_id,
        )
        self._backend: Backend | None = None
        self._upstream_address = "-"
        self._target = b""
        self._outcome = Outcome.FORWARDED
        self._failure: UpstreamFailure | None = None
        self._pending: Deferred[IResponse] | Deferred[IResponse | tuple[Switched, UpgradeClientProtocol]] | None = None
        self._relay: BodyRelay | None = None
        # When the backend must have sent its response headers by (clock
        # seconds), while waiting for them; the watch's sweep enforces it.
        self.response_deadline: float | None = None
        self._timed_out = False
        self._tried: list[str] = []
        # The protocols asked for (Upgrade), when the request may become a tunnel.
        self._upgrade: Sequence[bytes] | None = None
        self._sticky_key: bytes | None = None
        # The sticky cookie to set on the response: the request had no valid one.
        self._set_cookie: bytes | None = None
        # The colour a valid override pass named.
        self._override: str | None = None
        self._tunnel: Tunnel | None = None

    def start(self) -> None:
        request = self._request
        # Told when the request finishes or its client leaves, as a Deferred
        # from notifyFinish would be, without making one per request.
        request.notifications.append(self)  # type: ignore[arg-type]

        if request.method in _REFUSED_METHODS:
            request.responseHeaders.setRawHeaders(b"allow", [_ALLOW])
            self._answer_error(405, f"{request.method.decode('ascii')} is not supported")
            return
        target = origin_form(request.uri)
        if target is None:
            self._answer_error(400, "request target must be a path or an http(s) URL")
            return
        self._target = target
        upgrade = header_values(request.requestHeaders, _UPGRADE)
        if (
            upgrade is not None
            and request.clientproto == b"HTTP/1.1"
            and not _has_body(request)
            and wants_upgrade(
                connection_tokens(header_values(request.requestHeaders, _CONNECTION) or []), upgrade
            )
        ):
            self._upgrade = upgrade
        router = self._settings.router
        backend = self._route()
        if self._override is not None and (backend is None or not router.available(backend)):
            self._override_cannot_serve()
            return
        if backend is None:
            if router.configured:
                self._no_healthy_backend()
            else:
                self._answer_error(502, "no backends available")
            return
        self._send(backend)

    def _copy_to_mirrors(self, served_by: Backend) -> None:
        """
        Send copies to the mirrored colours drawn for this request, once the
        colour that serves it (after any failover) has begun to answer, and
        before its body is relayed: finishing the request discards its body.
        """
        request = self._request
        for mirror in self._settings.mirrors:
            if mirror.color == served_by.color or not mirror.drawn():
                continue
            backend = mirror.backend
            if backend.base_path not in _NO_BASE_PATH and has_dot_segment(self._target):
                continue
            headers = self._headers_for(backend)
            headers.setRawHeaders(b"sillyproxy-mirror", [b"1"])
            mirror.copy(
                request.method,
                backend.origin + join_target(backend.base_path, self._target),
                headers,
                request.content if _has_body(request) else None,
            )

    def _route(self) -> Backend | None:
        """
        The colour for this request: a tester's valid override pass first,
        then the user's sticky key, else a weighted draw.  Takes the
        override pass off the request, so it never reaches a backend.
        """
        settings = self._settings
        request = self._request
        headers = request.requestHeaders
        cookies = header_values(headers, _COOKIE)
        presented = header_values(headers, _OVERRIDE_HEADER)
        if presented is not None:
            headers.removeHeader(b"sillyproxy-color")
        if cookies is not None:
            pass_cookie = cookie(cookies, OVERRIDE_COOKIE)
            if pass_cookie is not None:
                if presented is None:
                    presented = [pass_cookie]
                kept = without_cookies(cookies, _OVERRIDE_COOKIES)
                if kept is None:
                    headers.removeHeader(b"cookie")
                else:
                    headers.setRawHeaders(b"cookie", kept)
        key = self._sticky_key_of(cookies)
        router = settings.router
        if presented is not None and settings.override_secret is not None:
            color = verify_pass(settings.override_secret, presented[0], settings.colors)
            if color is None:
                settings.metrics.override_rejected()
            else:
                self._override = color
                self._outcome = Outcome.OVERRIDE
                return router.backend(color)
        if key is not None:
            self._sticky_key = key
            self._outcome = Outcome.STICKY
            return router.choose_for(key)
        return router.choose()

    def _sticky_key_of(self, cookies: Sequence[bytes] | None) -> bytes | None:
        """The key this request's user is known by, making one (and its cookie) if need be."""
        settings = self._settings
        mode = settings.sticky
        if mode.kind == "off":
            return None
        if mode.kind == "cookie":
            value = cookie(cookies, settings.sticky_cookie)
            if value is not None and valid_key(value.decode("ascii", "replace")):
                return value
            key = new_key()
            self._set_cookie = set_cookie(
                settings.sticky_cookie, key, settings.sticky_max_age, self._request.isSecure()
            )
            return key.encode("ascii")
        if mode.kind == "header":
            assert mode.header is not None
            values = self._request.requestHeaders.getRawHeaders(mode.header)
            return values[0] if values and values[0] else None
        # By IP address (not port): the client's, as the access log has it,
        # written one way whatever way a forwarding header spelled it.
        client = self._logged_client()
        if client == "-":
            return None
        try:
            return ipaddress.ip_address(client).compressed.encode("ascii")
        except ValueError:
            return client.encode("ascii", "replace")

    def _override_cannot_serve(self) -> None:
        self._outcome = Outcome.UPSTREAM_FAILED
        self._failure = UpstreamFailure(
            503, f"override colour {self._override} has no healthy backend", "connect"
        )
        self._answer_error(503, self._failure.message)

    def _answer_error(self, status: int, message: str) -> None:
        self._request.responseHeaders.setRawHeaders(b"x-request-id", [self._request_id])
        if self._set_cookie is not None:
            self._request.responseHeaders.addRawHeader(b"set-cookie", self._set_cookie)
        write_plain_error(self._request, status, message, self._settings.clock.seconds())

    def _no_healthy_backend(self) -> None:
        self._outcome = Outcome.NO_HEALTHY_BACKENDS
        # Ejections last 10 s or more; a client that waits a moment may find
        # a backend back, or the next proxy replica in better shape.
        self._request.responseHeaders.setRawHeaders(b"retry-after", [b"1"])
        self._answer_error(503, "no healthy backends")

    def _send(self, backend: Backend) -> None:
        if backend.base_path not in _NO_BASE_PATH and has_dot_segment(self._target):
            # A backend that resolves dot-segments would let the client out
            # of the base path (/prefix/../admin); checked on every attempt,
            # as a failover may land on a colour with a base path.
            self._answer_error(400, "request path has a . or .. segment")
            return
        request = self._request
        settings = self._settings
        metrics = settings.metrics
        if self._backend is not None:
            metrics.request_ended(self._backend.color)
        metrics.request_started(backend.color)
        self._backend = backend
        self._tried.append(backend.color)
        headers = self._headers_for(backend)
        body = None
        if _has_body(request):
            # request.content is already on disk past 100 KB; it is streamed
            # from there in chunks rather than read whole.
            request.content.seek(0)
            body = ReceivedBodyProducer(request.content, settings.cooperator)
        url = backend.origin + join_target(backend.base_path, self._target)
        upstream = settings.router.upstreams[backend.color]
        if self._upgrade is not None:
            headers.setRawHeaders(b"connection", [b"Upgrade"])
            headers.setRawHeaders(b"upgrade", self._upgrade)
            switching = upstream.upgrade(request.method, url, headers, self._sent_to)
            self._pending = switching
            self.response_deadline = settings.clock.seconds() + settings.response_timeout
            settings.watch.waiting.add(self)
            settings.watch.wake()
            switching.addCallbacks(self._respond_or_switch, self._fail)
            return
        self._pending = upstream.request(request.method, url, headers, body, self._sent_to)
        self.response_deadline = settings.clock.seconds() + settings.response_timeout
        settings.watch.waiting.add(self)
        settings.watch.wake()
        self._pending.addCallbacks(self._respond, self._fail)

    def _headers_for(self, backend: Backend) -> Headers:
        """The request's headers as C{backend} gets them."""
        request = self._request
        headers = Headers()
        client_host = self._client_host
        copy_canonical_headers(
            headers,
            for_backend(  # type: ignore[arg-type]
                request.requestHeaders.getAllRawHeaders(),
                backend.color.encode("ascii"),
                client_host.encode("ascii") if client_host is not None else None,
                b"https" if request.isSecure() else b"http",
                self._request_id,
                trusted=self._trusted,
            ),
        )
        return headers

    def _sent_to(self, address: str) -> None:
        self._upstream_address = address

    def response_too_slow(self) -> None:
        """The sweep found the response headers overdue: cancel, answer 504."""
        self._stop_timer()
        if self._pending is not None:
            self._timed_out = True
            self._pending.cancel()

    def _stop_timer(self) -> None:
        if self.response_deadline is not None:
            self.response_deadline = None
            self._settings.watch.waiting.discard(self)

    def _respond(self, response: IResponse) -> None:
        self._pending = None
        self._stop_timer()
        request = self._request
        settings = self._settings
        now = settings.clock.seconds()
        phrase = response.phrase
        if phrase.translate(None, _PHRASE_BYTES):
            phrase = RESPONSES.get(response.code, b"")
        request.setResponseCode(response.code, phrase)
        outgoing = request.responseHeaders
        copy_canonical_headers(outgoing, for_client(response.headers.getAllRawHeaders()))  # type: ignore[arg-type]
        # The id in this proxy's access log, whatever the backend said.
        set_header_values(outgoing, _REQUEST_ID, [self._request_id])
        if self._set_cookie is not None:
            outgoing.addRawHeader(b"set-cookie", self._set_cookie)
        if not header_values(response.headers, _DATE):
            # RFC 9110 section 6.6.1: a recipient with a clock adds Date to a
            # response it forwards without one.
            set_header_values(outgoing, _DATE, [http_date(now)])
        if (
            response.length is not UNKNOWN_LENGTH
            and request.method != b"HEAD"
            and response.code not in _BODYLESS_STATUS
        ):
            set_header_values(outgoing, _CONTENT_LENGTH, [b"%d" % response.length])
        assert self._backend is not None
        if settings.mirrors and self._upgrade is None:
            # An upgrade is not copied even when refused: the copy might not be.
            self._copy_to_mirrors(self._backend)
        relay = self._relay = BodyRelay(
            request,
            self._backend,
            self._backend_failed_mid_body,
            settings.watch.streaming,
            settings.idle_timeout,
            settings.send_timeout,
            self._client_stopped_reading,
        )
        response.deliverBody(relay)
        # A body that arrived with the headers has already been relayed (and
        # the exchange may have finished and let go of the relay).
        relay.watch_for_stalls(now)
        settings.watch.wake()

    def _respond_or_switch(self, answer: IResponse | tuple[Switched, UpgradeClientProtocol]) -> None:
        if isinstance(answer, tuple):
            self._switch(*answer)
        else:
            self._respond(answer)

    def _switch(self, switched: Switched, backend: UpgradeClientProtocol) -> None:
        """The backend answered 101: relay it, then splice the two connections."""
        self._pending = None
        self._stop_timer()
        request = self._request
        channel = request.channel
        if channel is None:
            backend.transport.abortConnection()
            return
        assert self._backend is not None
        phrase = switched.phrase
        if not phrase or phrase.translate(None, _PHRASE_BYTES):
            phrase = b"Switching Protocols"
        lines = [b"HTTP/1.1 101 " + phrase]
        named = connection_tokens(
            [value for name, value in switched.headers if name.lower() == b"connection"]
        ) - {b"upgrade"}
        for name, value in switched.headers:
            lowered = name.lower()
            if lowered not in _NOT_RELAYED_ON_SWITCH and lowered not in named:
                lines.append(name + b": " + value)
        lines.append(b"X-Request-Id: " + self._request_id)
        if self._set_cookie is not None:
            lines.append(b"Set-Cookie: " + self._set_cookie)
        request.setResponseCode(101)
        channel.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")
        tunnel = self._tunnel = Tunnel(channel.transport, backend.transport)
        backend.tunnel = channel.tunnel = tunnel
        # The client's slow reads pause the backend, through the channel.
        request.registerProducer(backend.transport, True)
        tunnel.start()
        if switched.rest:
            tunnel.from_backend(switched.rest)
        settings = self._settings
        # The request is answered: from now on the tunnel is counted, not
        # the request (an hour-long tunnel is not an hour-long request).
        settings.metrics.request_ended(self._backend.color)
        settings.metrics.tunnel_opened(self._backend.color)
        settings.watch.tunnels.add(tunnel)
        settings.watch.wake()

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
        assert backend is not None
        metrics = self._settings.metrics
        metrics.upstream_failed(backend.color, problem.kind)
        _log.warn(
            "{color} backend {url} failed: {message} ({cause})",
            color=backend.color,
            url=backend.url,
            message=problem.message,
            cause=failure.getErrorMessage(),
        )
        retry = self._retry_backend(problem)
        if retry is not None:
            if retry.color != backend.color:
                metrics.retried(backend.color, retry.color)
                self._settings.on_failed_over(backend.color)
            self._outcome = Outcome.FAILOVER
            self._send(retry)
            return
        if self._override is not None and not problem.maybe_sent:
            # A tester asked for this colour and it could not be reached:
            # never a silent switch to another.  (Anything else, a timeout
            # or a reset after sending, is answered as for any request.)
            self._override_cannot_serve()
            return
        if problem.status == 503:
            self._no_healthy_backend()
            return
        self._outcome = Outcome.UPSTREAM_FAILED
        self._failure = problem
        self._answer_error(problem.status, problem.message)

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
        router = self._settings.router
        current = self._backend
        assert current is not None
        # Another address of the same colour if there is one, else another
        # colour: the key's next best for a sticky request, none for an
        # override.
        if len(router.upstreams[current.color].addresses) > 1 and router.available(current):
            return current
        if self._override is not None:
            return None
        if self._sticky_key is not None:
            return router.choose_for(self._sticky_key, exclude=self._tried)
        return router.choose(exclude=self._tried)

    def _backend_failed_mid_body(self, outcome: Outcome) -> None:
        self._outcome = outcome
        assert self._backend is not None
        self._settings.metrics.upstream_failed(self._backend.color, outcome.metric_reason)

    def _logged_client(self) -> str:
        """The client for the access log: behind a trusted proxy, the address it forwarded for."""
        peer = self._client_host
        if peer is None:
            return "-"
        if not self._trusted:
            return peer
        forwarded_for = self._request.requestHeaders.getRawHeaders(b"x-forwarded-for")
        return real_client(peer, forwarded_for, self._settings.trusted_proxies)

    def _client_stopped_reading(self) -> None:
        self._outcome = Outcome.CLIENT_STOPPED_READING

    def callback(self, result: None) -> None:
        """The response has been sent."""
        self._finished(result)

    def errback(self, reason: Failure) -> None:
        """The client connection was lost first."""
        self._finished(reason)

    def _finished(self, result: object) -> None:
        request = self._request
        settings = self._settings
        self._stop_timer()
        tunnel = self._tunnel
        if tunnel is not None:
            status, sent, reason = self._tunnel_ended(tunnel)
        else:
            status, sent, reason = self._request_ended(result)
        settings.on_finished(
            AccessRecord(
                time=self._started,
                client=self._logged_client(),
                method=request.method,
                target=request.uri,
                color=self._backend.color if self._backend else "-",
                status=status,
                body_bytes=sent,
                duration=settings.clock.seconds() - self._started,
                outcome=reason,
                upstream=self._upstream_address,
                host=_header_text(request, _HOST),
                user_agent=_header_text(request, _USER_AGENT),
                request_id=self._request_id.decode("ascii"),
            )
        )
        # The relay holds this exchange's methods: let go of it, so that the
        # two, the request and its headers are freed as soon as they are
        # done with, not left for the cyclic garbage collector.
        self._relay = None

    def _tunnel_ended(self, tunnel: Tunnel) -> tuple[int, int, str]:
        """A tunnel's end, for the access log: status, bytes to the client, reason."""
        settings = self._settings
        settings.watch.tunnels.discard(tunnel)
        assert self._backend is not None
        settings.metrics.tunnel_closed(self._backend.color)
        reason = (
            f"tunnel closed by {tunnel.ended_by or 'client'}, "
            f"{tunnel.bytes_from_client} bytes from the client"
        )
        return 101, tunnel.bytes_from_backend, reason

    def _request_ended(self, result: object) -> tuple[int, int, str]:
        """A request's end, for the access log: status, body bytes sent, reason."""
        request = self._request
        if self._backend is not None:
            self._settings.metrics.request_ended(self._backend.color)
        if isinstance(result, Failure):
            if self._pending is not None:
                # The client is gone: abandon the backend request, which
                # closes its connection rather than pooling a half-read one.
                pending, self._pending = self._pending, None
                pending.cancel()
            elif self._relay is not None:
                self._relay.abandon()
            if self._outcome in _ROUTED:
                self._outcome = Outcome.CLIENT_CLOSED
        status = request.code
        if self._outcome is Outcome.CLIENT_CLOSED and not request.startedWriting:
            # Nothing was answered: the backend's status (or the default
            # 200) would count a hung backend as a success.
            status = CLIENT_CLOSED_REQUEST
        if self._outcome is Outcome.UPSTREAM_FAILED and self._failure is not None:
            reason = self._failure.message
        else:
            reason = self._outcome.value
        return status, request.sentLength, reason
