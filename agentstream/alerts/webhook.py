"""The optional webhook: each stored alert POSTed as JSON with a Slack-compatible ``text``.

Sends run in a task of their own behind a bounded queue, so that a slow or dead endpoint
never holds up the stream or the table: when the queue is full the alert is dropped from
the webhook (it is in the table) and counted as a failure. Each alert is tried
``1 + retries`` times, ``timeout_s`` each, with exponential backoff (0.5 s, 1 s, 2 s...).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.error
import urllib.request

from agentstream.alerts.metrics import AlertMetrics
from agentstream.contract.alerts import Alert

__all__ = ["Webhook"]

log = logging.getLogger(__name__)

QUEUE_MAX = 1000
BACKOFF_FIRST_S = 0.5


class Webhook:
    def __init__(self, url: str, metrics: AlertMetrics, *, timeout_s: float, retries: int):
        self._url = url
        self._metrics = metrics
        self._timeout_s = timeout_s
        self._retries = retries
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(QUEUE_MAX)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alerts-webhook")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def submit(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self._metrics.webhook_failures.inc()
            log.error("event=webhook_dropped reason=queue_full alert=%s", alert.id)

    def _post(self, body: bytes) -> int:
        request = urllib.request.Request(
            self._url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
            return int(response.status)

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            body = json.dumps({"text": alert.text, "alert": alert.model_dump(mode="json")})
            for attempt in range(self._retries + 1):
                try:
                    await asyncio.to_thread(self._post, body.encode())
                except (urllib.error.URLError, OSError, ValueError) as exc:
                    log.warning(
                        "event=webhook_failed attempt=%d alert=%s error=%r",
                        attempt + 1,
                        alert.id,
                        exc,
                    )
                    if attempt < self._retries:
                        await asyncio.sleep(BACKOFF_FIRST_S * 2**attempt)
                    continue
                self._metrics.webhook_sent.inc()
                break
            else:
                self._metrics.webhook_failures.inc()
                log.error("event=webhook_gave_up alert=%s attempts=%d", alert.id, self._retries + 1)
