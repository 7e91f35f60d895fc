"""Send a request body that twisted.web has already received (in memory or spooled to disk)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IConsumer
from twisted.internet.task import CooperativeTask, Cooperator, TaskFinished, TaskStopped
from twisted.python.failure import Failure
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

__all__ = ["ReceivedBodyProducer"]

CHUNK_SIZE = 64 * 1024


@implementer(IBodyProducer)
class ReceivedBodyProducer:
    """
    Produce a received request body of known length, in bounded chunks.

    Unlike FileBodyProducer it stops after exactly C{length} bytes instead of
    reading once more to find the end: a backend can answer (and twisted.web
    close the body file) before that extra read would have run.  A body of
    one chunk or less is written at once, without a trip through the
    cooperator.
    """

    def __init__(self, body: IO[bytes], cooperator: Cooperator) -> None:
        start = body.tell()
        body.seek(0, 2)
        self.length = body.tell() - start
        body.seek(start)
        self._body = body
        self._cooperator = cooperator
        self._task: CooperativeTask | None = None

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        if self.length <= CHUNK_SIZE:
            if self.length:
                consumer.write(self._body.read(self.length))
            return succeed(None)
        task = self._task = self._cooperator.cooperate(self._chunks(consumer))
        done: Deferred[None] = Deferred()

        def finished(result: object) -> None:
            if isinstance(result, Failure) and result.check(TaskStopped):
                # stopProducing was called: Agent no longer waits on us.
                return
            done.callback(None) if not isinstance(result, Failure) else done.errback(result)

        task.whenDone().addBoth(finished)
        return done

    def _chunks(self, consumer: IConsumer) -> Iterator[None]:
        remaining = self.length
        while remaining > 0:
            data = self._body.read(min(CHUNK_SIZE, remaining))
            if not data:
                raise OSError("the spooled request body ended early")
            consumer.write(data)
            remaining -= len(data)
            yield None

    # The consumer may pause, resume or stop us after the last chunk went
    # out; by then there is nothing to do.

    def pauseProducing(self) -> None:
        if self._task is not None:
            try:
                self._task.pause()
            except TaskFinished:
                pass

    def resumeProducing(self) -> None:
        if self._task is not None:
            try:
                self._task.resume()
            except TaskFinished:
                pass

    def stopProducing(self) -> None:
        if self._task is not None:
            try:
                self._task.stop()
            except TaskFinished:
                pass
