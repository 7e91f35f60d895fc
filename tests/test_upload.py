"""Tests of the producer that sends a received request body to the backend."""

from __future__ import annotations

import io
import os
import tempfile

from twisted.internet.task import Clock, Cooperator
from twisted.trial.unittest import SynchronousTestCase

from sillyproxy._upload import CHUNK_SIZE, ReceivedBodyProducer

from .support import ListConsumer


class Steps:
    """A cooperator clock that runs one scheduled tick per step()."""

    def __init__(self) -> None:
        self.clock = Clock()

    def advance(self, _: float = 0) -> None:
        calls = self.clock.getDelayedCalls()
        if calls:
            self.clock.advance(calls[0].getTime() - self.clock.seconds())


def clock_cooperator() -> tuple[Steps, Cooperator]:
    steps = Steps()
    # One chunk per tick, each tick one second apart, so a test can act
    # between chunks.
    return steps, Cooperator(
        terminationPredicateFactory=lambda: lambda: True,
        scheduler=lambda work: steps.clock.callLater(1, work),
    )


class ReceivedBodyProducerTests(SynchronousTestCase):
    def test_small_body_written_at_once(self) -> None:
        """If the body fits one chunk, then it is written at once and the producer is done."""
        _, cooperator = clock_cooperator()
        producer = ReceivedBodyProducer(io.BytesIO(b"hello"), cooperator)
        consumer = ListConsumer()
        self.assertEqual(producer.length, 5)
        self.successResultOf(producer.startProducing(consumer))
        self.assertEqual(consumer.chunks, [b"hello"])

    def test_spooled_body_in_bounded_chunks(self) -> None:
        """If the body is large and on disk, then it goes in chunks of at most 64 KiB, exactly."""
        data = os.urandom(CHUNK_SIZE * 3 + 17)
        spool = tempfile.TemporaryFile()
        spool.write(data)
        spool.seek(0)
        clock, cooperator = clock_cooperator()
        producer = ReceivedBodyProducer(spool, cooperator)
        consumer = ListConsumer()
        done = producer.startProducing(consumer)
        for _ in range(10):
            clock.advance(0)
        self.successResultOf(done)
        self.assertEqual(b"".join(consumer.chunks), data)
        self.assertEqual([len(chunk) for chunk in consumer.chunks], [CHUNK_SIZE] * 3 + [17])
        # Done without reading past the length, so closing the file is safe.
        spool.close()
        clock.advance(0)

    def test_pause_and_stop(self) -> None:
        """If the backend pauses the upload, then nothing more is read until resumed; stop ends it quietly."""
        data = os.urandom(CHUNK_SIZE * 4)
        clock, cooperator = clock_cooperator()
        producer = ReceivedBodyProducer(io.BytesIO(data), cooperator)
        consumer = ListConsumer()
        done = producer.startProducing(consumer)
        clock.advance(0)
        written = len(consumer.chunks)
        producer.pauseProducing()
        for _ in range(5):
            clock.advance(0)
        self.assertEqual(len(consumer.chunks), written)
        producer.resumeProducing()
        clock.advance(0)
        self.assertGreater(len(consumer.chunks), written)
        producer.stopProducing()
        producer.stopProducing()
        for _ in range(5):
            clock.advance(0)
        self.assertNoResult(done)
        self.assertLess(len(b"".join(consumer.chunks)), len(data))
