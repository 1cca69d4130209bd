"""faust's broker settings for the alerts app: credentials from our settings, and faust's
aiokafka transport with the fetch loop's idle wait capped and the broker's fetches batched.

faust's fetch loop waits up to 1 s on idle partitions when every partition with data is
paused; partitions resumed meanwhile sit unread for that second (measured on the former
faust sink worker: a ~0.5 s stall every ~2.5 s). Capped at 50 ms, an idle process wakes ~20
times a second. Registered as the broker URL scheme ``agentstream-alerts://``.

faust asks the broker to answer a fetch as soon as one byte is there (1,500 ms at most):
in live traffic, where the SDK's messages are small, that is a fetch response - parsed in
Python, handed from faust's consumer thread to the event loop - for every few messages,
which made much of the process's CPU time per record. Here the broker answers once 64 KiB
are there or after 20 ms: at most 20 ms more per stage, far fewer responses (BENCHMARKS.md,
Alerts: the lag at 2,000 records/s); an idle process costs ~7% of a core instead of ~3%.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers import aiokafka as faust_aiokafka

from agentstream.contract.settings import Settings

__all__ = ["FETCH_WAIT_CAP_S", "SCHEME", "broker_credentials", "broker_url"]

SCHEME = "agentstream-alerts"
FETCH_WAIT_CAP_S = 0.05
FETCH_MIN_BYTES = 64 * 1024
FETCH_MAX_WAIT_MS = 20


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka's Fetcher takes these from the consumer when it starts
        consumer._fetch_min_bytes = FETCH_MIN_BYTES
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109
        return await super().getmany(active_partitions, min(timeout, FETCH_WAIT_CAP_S))


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")


def broker_url(settings: Settings) -> str:
    return f"{SCHEME}://" + ";".join(settings.kafka_bootstrap.split(","))


def broker_credentials(settings: Settings) -> Any:
    """The Kafka security settings as faust credentials (faust does not take aiokafka kwargs)."""
    opts = settings.kafka_client_options()
    protocol = opts["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(opts["ssl_context"])
    return faust.SASLCredentials(
        username=opts["sasl_plain_username"],
        password=opts["sasl_plain_password"],
        mechanism=opts["sasl_mechanism"],
        ssl_context=opts.get("ssl_context"),
    )
