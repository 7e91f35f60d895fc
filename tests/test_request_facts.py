"""In-memory tests of what the proxy records and passes on about each request: its id, upstream, Host and User-Agent."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from .support import CaptureResource, InMemoryProxy, backend

BLUE = backend("blue", "http://blue.internal:8080")
GENERATED = b"0123456789abcdef0123456789abcdef"


class RequestFactsTests(SynchronousTestCase):
    def get(self, proxy: InMemoryProxy, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        d = proxy.client.get("http://shop.example/x", headers=headers or {})
        proxy.flush()
        response = self.successResultOf(d)
        self.successResultOf(proxy.client.content(response))
        return response

    def test_generated_id_reaches_backend_client_and_log(self) -> None:
        """If a request comes without X-Request-Id, then one id is generated and sent to the backend, returned to the client and logged."""
        capture = CaptureResource(headers=[(b"X-Request-Id", [b"backend-own"])])
        proxy = InMemoryProxy([(BLUE, capture)])
        response = self.get(proxy)
        self.assertEqual(capture.seen[0].headers.getRawHeaders(b"x-request-id"), [GENERATED])
        self.assertEqual(response.headers.getRawHeaders(b"x-request-id"), [GENERATED])
        self.assertEqual(proxy.access[0].request_id, GENERATED.decode())

    def test_client_id_kept(self) -> None:
        """If the client sends a valid X-Request-Id, then that id is forwarded, returned and logged."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        response = self.get(proxy, {"X-Request-Id": "trace-42"})
        self.assertEqual(capture.seen[0].headers.getRawHeaders(b"x-request-id"), [b"trace-42"])
        self.assertEqual(response.headers.getRawHeaders(b"x-request-id"), [b"trace-42"])
        self.assertEqual(proxy.access[0].request_id, "trace-42")

    def test_invalid_client_id_replaced(self) -> None:
        """If the client's X-Request-Id is not one run of visible ASCII, then a new id replaces it everywhere."""
        capture = CaptureResource()
        proxy = InMemoryProxy([(BLUE, capture)])
        self.get(proxy, {"X-Request-Id": "two words"})
        self.assertEqual(capture.seen[0].headers.getRawHeaders(b"x-request-id"), [GENERATED])

    def test_error_response_carries_id(self) -> None:
        """If the proxy answers itself (no backend configured), then the response still carries the request's id."""
        proxy = InMemoryProxy(extra_backends=[backend("blue", "http://b", 0)])
        response = self.get(proxy)
        self.assertEqual(response.code, 502)
        self.assertEqual(response.headers.getRawHeaders(b"x-request-id"), [GENERATED])

    def test_log_record_names_upstream_host_and_agent(self) -> None:
        """If a request is forwarded, then its access record names the backend address asked, the Host and the User-Agent."""
        proxy = InMemoryProxy([(BLUE, CaptureResource())])
        self.get(proxy, {"User-Agent": "curl/8.5.0"})
        record = proxy.access[0]
        self.assertEqual(
            (record.upstream, record.host, record.user_agent), ("10.0.0.1:8080", "shop.example", "curl/8.5.0")
        )

    def test_log_record_without_upstream(self) -> None:
        """If no backend was asked, then the record's upstream is "-"."""
        proxy = InMemoryProxy(extra_backends=[backend("blue", "http://b", 0)])
        self.get(proxy)
        self.assertEqual(proxy.access[0].upstream, "-")
