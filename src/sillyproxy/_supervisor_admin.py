"""
The supervisor's admin listener: the one a replica with several workers
exposes, answering from what its workers' own admin listeners (UNIX
sockets, private to the replica) say at that moment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ._admin import OverridePasses
from ._coordination import WorkerClient
from ._dashboard import add_dashboard
from ._merge import merge_history, merge_metrics, merge_status
from ._supervisor import Supervisor
from ._timestamps import rfc3339

__all__ = ["supervisor_admin"]

_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"


class _Answer(Resource):
    """A leaf that answers GET with what C{answer} returns, in time: status, content type, body."""

    isLeaf = True

    def __init__(self, answer: Callable[[], Deferred[tuple[int, bytes, bytes]]]) -> None:
        super().__init__()
        self._answer = answer

    def render_GET(self, request: Request) -> int:
        finished: list[object] = []
        request.notifyFinish().addBoth(finished.append)

        def respond(answer: tuple[int, bytes, bytes]) -> None:
            if finished:
                return
            status, content_type, body = answer
            request.setResponseCode(status)
            request.setHeader(b"content-type", content_type)
            request.setHeader(b"cache-control", b"no-store")
            request.write(body)
            request.finish()

        def failed(reason: Any) -> None:
            respond((500, _TEXT, b"the workers could not be asked\n"))

        self._answer().addCallbacks(respond, failed)
        return NOT_DONE_YET


def supervisor_admin(
    workers: WorkerClient,
    supervisor: Supervisor,
    clock: Callable[[], float],
    version: str,
    listen: str,
    colors: Sequence[str],
    override_secret: bytes | None = None,
    rollback_healthz: bool = False,
    rolled_back: Mapping[str, str] | None = None,
) -> Resource:
    """
    The admin tree of a replica with workers: the same paths as one
    process's (L{admin_resource}), each answered by asking the workers, and:

      - C{/status} adds C{workers}: C{{pid, started, requests}} for each;
      - C{/readyz} answers 503 when no worker is serving;
      - C{/healthz} is the supervisor's own health (and, with
        C{rollback_healthz}, 503 once a colour is in C{rolled_back}, the
        supervisor's verdicts).
    """
    started = clock()

    def answered(results: list[tuple[int, int, bytes]]) -> list[tuple[int, dict[str, Any]]]:
        parsed = []
        for index, code, body in results:
            if code != 200:
                continue
            try:
                parsed.append((index, json.loads(body)))
            except ValueError:
                # A worker mid-upgrade or confused: leave it out of the view.
                continue
        return parsed

    def status() -> Deferred[tuple[int, bytes, bytes]]:
        def merge(results: list[tuple[int, int, bytes]]) -> tuple[int, bytes, bytes]:
            statuses = answered(results)
            slots = {slot.index: slot for slot in supervisor.slots}
            if not statuses:
                body = {"version": version, "workers": [], "error": "no worker answered"}
                return 503, _JSON, json.dumps(body, indent=2).encode() + b"\n"
            try:
                listing = [
                    {
                        # The worker's own word: the slot may hold its successor by now.
                        "pid": s["pid"],
                        "started": rfc3339(slots[index].started),
                        "requests": sum(c["requests"] for c in s["colors"].values()),
                    }
                    for index, s in statuses
                ]
                merged = merge_status([s for _, s in statuses])
            except (KeyError, TypeError, ValueError, IndexError) as e:
                body = {"version": version, "workers": [], "error": f"the workers' answers do not agree: {e}"}
                return 500, _JSON, json.dumps(body, indent=2).encode() + b"\n"
            now = clock()
            merged.update(
                {
                    "version": version,
                    "pid": os.getpid(),
                    "time": rfc3339(now),
                    "uptime_seconds": round(now - started, 1),
                    "listen": listen,
                    "workers": listing,
                }
            )
            return 200, _JSON, json.dumps(merged, indent=2).encode() + b"\n"

        return workers.ask("/status").addCallback(merge)

    def history() -> Deferred[tuple[int, bytes, bytes]]:
        def merge(results: list[tuple[int, int, bytes]]) -> tuple[int, bytes, bytes]:
            histories = [h for _, h in answered(results)]
            if not histories:
                return 503, _TEXT, b"no worker answered\n"
            try:
                merged = merge_history(histories)
            except (KeyError, TypeError, ValueError) as e:
                return 500, _TEXT, f"the workers' answers do not agree: {e}\n".encode()
            return 200, _JSON, json.dumps(merged).encode() + b"\n"

        return workers.ask("/history").addCallback(merge)

    # Slot -> (pid, its last exposition); and the counters of exited workers.
    last_exposition: dict[int, tuple[int | None, str]] = {}
    retired: list[str] = []

    def metrics() -> Deferred[tuple[int, bytes, bytes]]:
        def merge(results: list[tuple[int, int, bytes]]) -> tuple[int, bytes, bytes]:
            for index, (pid, text) in list(last_exposition.items()):
                if workers.pid_of(index) != pid:
                    # That process is gone: its counts stay, folded into one
                    # text (before its successor's answer takes its place).
                    del last_exposition[index]
                    retired[:] = [merge_metrics([], retired=[*retired, text]).decode("utf-8")]
            for index, code, body in results:
                if code == 200:
                    last_exposition[index] = (workers.pid_of(index), body.decode("utf-8", "replace"))
            # A worker slow to answer this time counts as it last did.
            texts = [text for _, text in last_exposition.values()]
            answering = sum(code == 200 for _, code, _ in results)
            own = (
                "# HELP sillyproxy_workers Worker processes that answered this scrape.\n"
                "# TYPE sillyproxy_workers gauge\n"
                f"sillyproxy_workers {answering}\n"
            ).encode("ascii")
            try:
                merged = merge_metrics(texts, retired) if texts or retired else b""
            except ValueError as e:
                return 500, _TEXT, f"the workers' metrics could not be merged: {e}\n".encode()
            return 200, b"text/plain; version=0.0.4; charset=utf-8", merged + own

        return workers.ask("/metrics").addCallback(merge)

    def ready() -> Deferred[tuple[int, bytes, bytes]]:
        def judge(results: list[tuple[int, int, bytes]]) -> tuple[int, bytes, bytes]:
            if supervisor.stopping:
                return 503, _TEXT, b"draining\n"
            if any(code == 200 for _, code, _ in results):
                return 200, _TEXT, b"ready\n"
            return 503, _TEXT, b"no worker is serving\n"

        return workers.ask("/readyz").addCallback(judge)

    def health() -> Deferred[tuple[int, bytes, bytes]]:
        if rollback_healthz and rolled_back:
            return succeed((503, _TEXT, b"rolled back: " + ", ".join(rolled_back).encode("ascii")))
        return succeed((200, _TEXT, b"ok\n"))

    root = Resource()
    root.putChild(b"healthz", _Answer(health))
    root.putChild(b"readyz", _Answer(ready))
    root.putChild(b"metrics", _Answer(metrics))
    root.putChild(b"status", _Answer(status))
    root.putChild(b"history", _Answer(history))
    root.putChild(b"override", OverridePasses(colors, override_secret))
    add_dashboard(root)
    return root

