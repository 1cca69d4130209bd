"""faust's broker settings for the alerts app: credentials from our settings, and faust's
aiokafka transport with the fetch loop's idle wait capped.

faust's fetch loop waits up to 1 s on idle partitions when every partition with data is
paused; partitions resumed meanwhile sit unread for that second (measured on the former
faust sink worker: a ~0.5 s stall every ~2.5 s). Capped at 50 ms, an idle process wakes ~20
times a second. Registered as the broker URL scheme ``agentstream-alerts://``.
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


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
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
