"""faust's aiokafka transport, with the fetch loop's idle wait capped.

faust's fetch loop asks its consumer thread for records from the partitions that are not
paused, waiting up to 1 s when none of those has data. Under a backlog, faust pauses the
partitions whose stream buffer is full (here: while the previous batch is written); if every
partition with data is paused when the loop asks, it waits out the whole second on the
idle ones, and partitions resumed meanwhile sit unread. Measured on a 370k-record backlog:
a ~0.5 s stall every ~2.5 s, flushes on partial batches, 25.6k rows/s; with the wait capped
at 50 ms, no stall and 32.9k rows/s. Idle, the cap costs ~20 wake-ups a second: an idle
worker measured 1.75% of one core against 0.55% with faust's 1 s wait.

Registered as the broker URL scheme ``agentstream://`` (streams/app.py uses it); everything
else is faust's own aiokafka transport.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["FETCH_WAIT_CAP_S", "SCHEME", "Transport"]

SCHEME = "agentstream"
FETCH_WAIT_CAP_S = 0.05


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def getmany(self, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109
        return await super().getmany(active_partitions, min(timeout, FETCH_WAIT_CAP_S))


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
