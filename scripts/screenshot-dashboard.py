"""
Make docs/dashboard.png: the admin dashboard in headless Chromium while
green ramps 5, 25, 50, 100 % in front of two backends under steady traffic.

    .venv/bin/python scripts/screenshot-dashboard.py [OUTPUT]   # default docs/dashboard.png

Needs what ./scripts/test.sh sets up (the .venv with selenium, Debian's
chromium and chromium-driver). It starts a real `twistd -n sillyproxy` on
free ports of 127.0.0.1, sends traffic for about 45 s so the charts have
something to show (green's step from 5 % to 25 % falls in that time), then
takes the picture and stops everything it started.
"""

from __future__ import annotations

import http.client
import random
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import start_twistd  # noqa: E402

TRAFFIC_SECONDS = 45
PER_SECOND = 60
WIDTH = 1280


def backend(name: str, latency: tuple[float, float], error_rate: float) -> ThreadingHTTPServer:
    """A backend in threads that answers after a random delay, and 500 at C{error_rate}."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            time.sleep(random.uniform(*latency))
            status = 500 if random.random() < error_rate else 200
            body = f"{name} {status}\n".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def traffic(port: int, stop: threading.Event, per_second: float) -> None:
    """One client, with keep-alive, at about C{per_second} requests a second."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    while not stop.is_set():
        try:
            connection.request("GET", "/")
            connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            connection.close()
        stop.wait(random.expovariate(per_second))
    connection.close()


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard.png"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    blue = backend("blue", (0.002, 0.008), 0.0)
    green = backend("green", (0.004, 0.025), 0.01)
    # Step 1 (5 %) began 30 s ago and lasts a minute: the picture, 45 s on,
    # shows step 2 (25 %) with a countdown, and the change in the charts.
    start = datetime.now(timezone.utc) - timedelta(seconds=30)
    stop = threading.Event()
    with TemporaryDirectory() as logs:
        proxy = start_twistd(
            "sillyproxy",
            [],
            {
                "BLUE": f"http://127.0.0.1:{blue.server_address[1]}",
                "GREEN": f"http://127.0.0.1:{green.server_address[1]}",
                "GREEN_RAMP": "5,25,50,100",
                "GREEN_RAMP_START": start.isoformat(timespec="seconds"),
                "GREEN_RAMP_STEP": "60s",
                "GREEN_ROLLBACK_ERROR_RATE": "0.2",
                "SILLYPROXY_ACCESS_LOG": "off",
            },
            Path(logs),
        )
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in [
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
            f"--window-size={WIDTH},900", "--hide-scrollbars", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
        ]:
            options.add_argument(argument)
        browser = webdriver.Chrome(options=options, service=Service(executable_path="/usr/bin/chromedriver"))
        clients = [threading.Thread(target=traffic, args=(proxy.port, stop, PER_SECOND / 4)) for _ in range(4)]
        try:
            for client in clients:
                client.start()
            browser.get(f"http://127.0.0.1:{proxy.admin_port}/")
            time.sleep(TRAFFIC_SECONDS)
            # The whole page: a headless window cannot grow past the screen,
            # but the emulated viewport can.
            height = browser.execute_script("return Math.ceil(document.querySelector('main').getBoundingClientRect().bottom)")
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            time.sleep(1.5)  # a poll, and the redraw after the resize
            output.parent.mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(output))
            print(f"wrote {output}")
        finally:
            stop.set()
            for client in clients:
                client.join(15)
            browser.quit()
            proxy.stop()
            blue.shutdown()
            green.shutdown()


if __name__ == "__main__":
    main()
