"""
The admin listener's dashboard: the resource in memory, then the page in a
real headless Chromium against a real proxy ramping green, which is rolled
back when green starts failing.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path
from typing import Any, Callable

import pytest
from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from sillyproxy._dashboard import add_dashboard

from .processes import Twistd, start_twistd

ASSETS = files("sillyproxy") / "dashboard"
CSP = "default-src 'self'"


class DashboardResourceTests(SynchronousTestCase):
    """The page and its two assets, served from an admin root with another child."""

    def setUp(self) -> None:
        root = Resource()
        status = Resource()
        status.isLeaf = True
        status.render_GET = lambda request: b"{}"  # type: ignore[attr-defined]
        root.putChild(b"status", status)
        add_dashboard(root)
        self.client = StubTreq(root)

    def request(self, method: str, path: str) -> tuple[int, dict[str, list[str]], bytes]:
        response = self.successResultOf(self.client.request(method, "http://admin" + path))
        headers = {k.decode().lower(): [v.decode() for v in vs] for k, vs in response.headers.getAllRawHeaders()}
        return response.code, headers, self.successResultOf(self.client.content(response))

    def test_files_served_with_types_and_headers(self) -> None:
        """
        If / , /dashboard.js and /dashboard.css are fetched, then each is the
        packaged file with its content type and charset, the CSP, nosniff
        and no caching.
        """
        for path, name, content_type in [
            ("/", "index.html", "text/html; charset=utf-8"),
            ("/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"),
            ("/dashboard.css", "dashboard.css", "text/css; charset=utf-8"),
        ]:
            code, headers, body = self.request("GET", path)
            self.assertEqual(code, 200, path)
            self.assertEqual(body, (ASSETS / name).read_bytes(), path)
            self.assertEqual(headers["content-type"], [content_type], path)
            self.assertEqual(headers["content-security-policy"], [CSP], path)
            self.assertEqual(headers["x-content-type-options"], ["nosniff"], path)
            self.assertEqual(headers["cache-control"], ["no-store"], path)

    def test_head(self) -> None:
        """If / is asked for with HEAD, then the answer has GET's headers and length, and no body."""
        code, headers, body = self.request("HEAD", "/")
        self.assertEqual((code, body), (200, b""))
        self.assertEqual(headers["content-length"], [str(len((ASSETS / "index.html").read_bytes()))])
        self.assertEqual(headers["content-type"], ["text/html; charset=utf-8"])
        self.assertEqual(headers["content-security-policy"], [CSP])

    def test_other_methods_405(self) -> None:
        """If the page is POSTed, PUT, DELETEd or sent an unknown method, then the answer is 405 allowing GET and HEAD."""
        for method in ["POST", "PUT", "DELETE", "PATCH", "FROB"]:
            for path in ["/", "/dashboard.js"]:
                code, headers, _ = self.request(method, path)
                self.assertEqual(code, 405, (method, path))
                self.assertEqual(headers["allow"], ["GET, HEAD"], (method, path))
                self.assertEqual(headers["content-security-policy"], [CSP], (method, path))

    def test_other_paths(self) -> None:
        """If a path under an asset is asked for, then it is a 404; the root's other children still answer."""
        for path in ["/dashboard.js/x", "/dashboard.css/", "//", "//dashboard.js"]:
            self.assertEqual(self.request("GET", path)[0], 404, path)
        self.assertEqual(self.request("GET", "/status")[:1], (200,))


class _Page(HTMLParser):
    """What CSP cares about in index.html: scripts, styles, links, attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str | None] = []
        self.stylesheets: list[str | None] = []
        self.style_elements = 0
        self.inline_script = ""
        self.forbidden_attributes: list[tuple[str, str]] = []
        self.ids: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.forbidden_attributes.append((tag, name))
            if name in ("href", "src", "action") and re.match(r"\s*javascript:", attributes[name] or "", re.I):
                self.forbidden_attributes.append((tag, name))
        if "id" in attributes:
            self.ids.append(attributes["id"] or "")
        if tag == "script":
            self.scripts.append(attributes.get("src"))
            self._in_script = True
        elif tag == "style":
            self.style_elements += 1
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.stylesheets.append(attributes.get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script += data


def _same_origin_relative(url: str | None) -> bool:
    """A URL with no scheme and no host, and not rooted, so it works under any prefix."""
    return bool(url) and re.match(r"^[a-z][a-z0-9+.-]*:|^/", url or "", re.I) is None


def test_index_html_has_only_same_origin_code() -> None:
    """
    If index.html is read as a browser would, then its one script and one
    stylesheet are same-origin relative URLs, and there is no inline
    script, style element, style attribute or event handler: the CSP would
    block them, so they must not be needed.
    """
    page = _Page()
    page.feed((ASSETS / "index.html").read_text("utf-8"))
    page.close()
    assert page.scripts == ["dashboard.js"]
    assert page.stylesheets == ["dashboard.css"]
    assert page.inline_script.strip() == ""
    assert page.style_elements == 0
    assert page.forbidden_attributes == []
    assert {"rollback-banner", "colors", "color-template", "split-now", "split-configured"} <= set(page.ids)
    assert len(page.ids) == len(set(page.ids))


def test_assets_reach_nothing_else() -> None:
    """
    If the script and style sheet are read, then they name no other origin
    (no http:, https: or protocol-relative URL), the script fetches status
    and history by relative URL, and it never writes markup from data.
    """
    script = (ASSETS / "dashboard.js").read_text("utf-8")
    style = (ASSETS / "dashboard.css").read_text("utf-8")
    for text in (script, style):
        assert re.search(r"https?:|[\"'(]//", text) is None
    assert "@import" not in style and "url(" not in style
    assert re.findall(r"getJSON\(\"([^\"]*)\"\)", script) == ["history", "status"]
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script


# --- The page in a real browser -------------------------------------------

BROWSER_TIMEOUT = 30.0
CHROMIUM = "/usr/bin/chromium"


def _chrome() -> Any:
    """
    Headless Chromium under selenium's Chrome driver, or the test fails
    saying how to get one (SILLYPROXY_SKIP_BROWSER=1 skips instead).
    """
    if os.environ.get("SILLYPROXY_SKIP_BROWSER") == "1":
        pytest.skip("SILLYPROXY_SKIP_BROWSER=1")
    how = (
        "run ./scripts/test.sh, which installs Debian's chromium and chromium-driver "
        "and selenium (as CI does), or set SILLYPROXY_SKIP_BROWSER=1 to skip the browser test"
    )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {how}", pytrace=False)
    driver = shutil.which("chromedriver")
    binary = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    missing = [name for name, found in [("chromedriver", driver), ("chromium", binary)] if found is None]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: {how}", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in [
        "--headless=new",
        "--no-sandbox",  # we run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        # The machine has no network beyond 127.0.0.1: keep Chromium from
        # trying its own services at every start.
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]:
        options.add_argument(argument)
    # An explicit chromedriver: selenium would otherwise try to download one.
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.set_page_load_timeout(BROWSER_TIMEOUT)
    browser.set_script_timeout(BROWSER_TIMEOUT)
    return browser


class _Backend:
    """An HTTP server in a thread answering 200, or 500 once C{failing} is set."""

    def __init__(self, name: str) -> None:
        self.failing = threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status = 500 if backend.failing.is_set() else 200
                body = f"{name} {status}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name=f"backend-{name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Traffic:
    """Requests to the proxy from a thread, about C{per_second} a second, until stopped."""

    def __init__(self, port: int, per_second: float = 40) -> None:
        self.sent = 0
        self._stop = threading.Event()
        self._port = port
        self._pause = 1 / per_second
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)
        try:
            while not self._stop.is_set():
                try:
                    connection.request("GET", "/")
                    connection.getresponse().read()
                    self.sent += 1
                except (OSError, http.client.HTTPException):
                    connection.close()
                self._stop.wait(self._pause)
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def _ramping_proxy(blue: str, green: str, log_dir: Path, **environ: str) -> Twistd:
    """A proxy ramping green 10, 50, 100 % from now, rolled back at a 20 % error rate."""
    return start_twistd(
        "sillyproxy",
        [],
        {
            "BLUE": blue,
            "GREEN": green,
            "GREEN_RAMP": "10,50,100",
            "GREEN_RAMP_START": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "GREEN_RAMP_STEP": "60s",
            "GREEN_ROLLBACK_ERROR_RATE": "0.2",
            "SILLYPROXY_ANALYSIS_MIN_REQUESTS": "5",
            "SILLYPROXY_ANALYSIS_WINDOW": "30",
            "SILLYPROXY_ACCESS_LOG": "off",
            **environ,
        },
        log_dir,
    )


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], object]]]:
    """Callables run when the test ends, last first, each even if another raised."""
    callbacks: list[Callable[[], object]] = []
    yield callbacks
    errors = []
    for callback in reversed(callbacks):
        try:
            callback()
        except Exception as e:  # noqa: BLE001 - report all, after running all
            errors.append(e)
    if errors:
        raise errors[0]


def _wait(browser: Any, what: str, condition: Callable[[Any], object], timeout: float = BROWSER_TIMEOUT) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, timeout, poll_frequency=0.2).until(condition)
    except TimeoutException:
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}; the page shows:\n"
            + browser.find_element("tag name", "body").text
        ) from None


def _text(browser: Any, selector: str) -> str:
    return str(browser.find_element("css selector", selector).text)


def _number(browser: Any, selector: str) -> float:
    """The number an element shows, or -1 for a placeholder such as "—"."""
    try:
        return float(_text(browser, selector))
    except ValueError:
        return -1.0


def test_dashboard_in_browser(cleanup: list[Callable[[], object]], tmp_path: Path) -> None:
    """
    If the dashboard is open in Chromium while green ramps, then it shows
    both colours and green's ramp step with a countdown; when traffic flows
    the requests/s of both rise above 0 with no banner; and when green
    starts failing, the red banner names green and green's share drops to 0.
    """
    started = time.monotonic()
    browser = _chrome()
    cleanup.append(browser.quit)
    blue, green = _Backend("blue"), _Backend("green")
    cleanup += [blue.close, green.close]
    proxy = _ramping_proxy(blue.url, green.url, tmp_path)
    cleanup.append(proxy.stop)

    browser.get(f"http://127.0.0.1:{proxy.admin_port}/")
    assert browser.title == "sillyproxy"
    blue_card = '[data-color="blue"].color'
    green_card = '[data-color="green"].color'
    _wait(browser, "the first poll", lambda b: b.find_elements("css selector", green_card))
    assert _text(browser, f"{green_card} .ramp-step") == "step 1 of 3, 10 %"
    assert _text(browser, f"{green_card} .configured-share") == "10 %"
    assert _text(browser, f"{blue_card} .configured-share") == "90 %"
    assert _text(browser, f"{blue_card} .rps") == "0.0"
    countdown = re.compile(r"next step in (\d+):(\d\d)")
    first = _wait(browser, "a countdown", lambda b: countdown.search(_text(b, f"{green_card} .ramp-next")))
    seconds = int(first[1]) * 60 + int(first[2])
    assert 0 < seconds <= 60
    _wait(
        browser,
        "the countdown to move",
        lambda b: (m := countdown.search(_text(b, f"{green_card} .ramp-next"))) and int(m[1]) * 60 + int(m[2]) < seconds,
    )
    assert not browser.find_element("id", "rollback-banner").is_displayed()
    # A script or style the CSP blocked, or a script error, is logged as
    # SEVERE; the favicon the page does not have is the one expected entry.
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == []

    traffic = _Traffic(proxy.port)
    cleanup.append(traffic.stop)
    for card in (blue_card, green_card):
        _wait(browser, f"{card} requests/s above 0", lambda b, card=card: _number(b, f"{card} .rps") > 0)
    assert not browser.find_element("id", "rollback-banner").is_displayed()
    assert browser.find_elements("css selector", f"{green_card} .chart-rps")

    green.failing.set()
    banner = _wait(
        browser,
        "the rollback banner",
        lambda b: (e := b.find_element("id", "rollback-banner")).is_displayed() and e,
        timeout=60,
    )
    assert banner.text.startswith("green rolled back: "), banner.text
    assert "blue" not in banner.text
    assert "rolled-back" in browser.find_element("css selector", green_card).get_attribute("class")
    _wait(browser, "green's share to drop to 0", lambda b: _text(b, f"{green_card} .share") == "0 %")
    assert _text(browser, f"{green_card} .ramp-next") == "· stopped by the rollback"
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == []
    print(f"browser test took {time.monotonic() - started:.1f} s")
