"""The alerts app: two faust agents in a consumer group of their own (docs/alerts.md).

1. *observe* reads sessions, agents, llm_interactions and agent_executions. They are
   co-partitioned by session id (the SDK's partitioner), so a session's user and its
   agents' types are in this partition's tables (``alerts-session-users``,
   ``alerts-agent-types``, changelog-backed). A call or execution waits, in its partition's
   in-memory queue and in order, until its session (and agent) is known - the topics are
   read concurrently, so a call may come first - or until ``context_wait_s`` has passed
   (then it counts under an unknown key, "-"). Its message is acked only when all its
   records have left the queue, so a restart replays whatever was queued. What a drain of
   the queue counted becomes one *contribution* per (rule, group, window) key; they go to
   the observations topic packed by the partition their key hashes to (one message per
   partition and drain: faust's cost is per message, not per contribution).
2. *evaluate* reads the observations topic: a key's contributions all arrive on one
   partition, where the window's state lives (``alerts-windows``, changelog-backed). It
   skips a contribution it counted before (windows.py), adds it, and publishes an alert
   for every level reached for the first time, to ``{prefix}alerts``, recording the level
   (with the alert's value) as fired in the window's state. The states are kept in
   memory (``live``) and a changed one goes to the changelog once per commit interval
   (``_write_windows``), however many contributions it took: one changelog record per
   contribution was most of the stage's cost in live traffic.

Why not faust's ``processing_guarantee='exactly_once'``: its transactions are per
(topic group, partition) of the *destination*, so the contributions observe sends are not
committed atomically with the offsets of the records they came from. Exactly-once effects
come instead from positions (replays skipped) and from the alert's deterministic id, which
the table's unique key absorbs should an alert be published again.

An alert is not awaited (that would serialize the stage on the broker's round trip); a
crash could then leave a window's state saying "fired" on the changelog while the alert
itself never reached the broker. So, on the first contribution a partition gets after it
is assigned (start, restart, rebalance), every alert its recovered windows fired is
published again, identical (same id, value and fired_at): a lost one is restored, a
delivered one is absorbed by the table. A crash that lost an alert left the offsets of
its contribution uncommitted (faust flushes the producer before it commits), so that
first contribution comes: the replay.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import faust
import mode

from agentstream.alerts.costing import Coster
from agentstream.alerts.metrics import AlertMetrics
from agentstream.alerts.observe import Context, Observer, Tally, decode_key
from agentstream.alerts.rules import Level, Rule
from agentstream.alerts.transport import broker_credentials, broker_url
from agentstream.alerts.windows import Contribution, WindowState, display_value
from agentstream.contract.alerts import Alert, alert_id
from agentstream.contract.codec import decode
from agentstream.contract.entities import Agent, AgentExecution, LLMInteraction, Record, Session
from agentstream.contract.settings import Settings
from agentstream.contract.topics import alert_observations_topic, alerts_topic, topic_for

__all__ = ["EXPIRY_GRACE_S", "FLUSH_EVERY_S", "AlertsApp"]

log = logging.getLogger(__name__)

# A window's state is dropped once the newest contribution on its partition is this long
# past the window's end plus the allowed lateness: later contributions from a partition
# that lags further behind would start the window afresh (and could repeat an alert, which
# the table absorbs). An hour covers any lag the group would tolerate without alarms.
EXPIRY_GRACE_S = 3600
# Contributions wait at most this long in the observe stage: a bound on the latency it adds,
# and what lets one message carry the records of many small input messages.
FLUSH_EVERY_S = 0.05
PRODUCER_BUFFER_MAX = 100_000
_SWEEP_EVERY = 1000  # contributions between two sweeps of a partition's expired windows
_LETTER = {"llm_interactions": "l", "agent_executions": "e"}
_INPUTS = ("sessions", "agents", "llm_interactions", "agent_executions")


@dataclass
class _Message:
    event: Any
    remaining: int
    source: str
    ingest_time: datetime  # the event time of its records that have none
    tally: Tally = field(default_factory=Tally)


@dataclass
class _Window:
    """A window the evaluate stage is working on: its state, ahead of the changelog."""

    rule: Rule
    group: str
    start: int
    state: WindowState


@dataclass
class _Queued:
    offset: int
    index: int
    record: Record
    since: float
    message: _Message


class AlertsApp:
    def __init__(
        self,
        settings: Settings,
        rules: Iterable[Rule],
        coster: Coster,
        metrics: AlertMetrics,
        *,
        context_wait_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.rules = {r.name: r for r in rules}
        self.metrics = metrics
        self.context_wait_s = context_wait_s
        self.observer = Observer(self.rules.values(), coster, settings.alert_lateness_s)
        self.queues: dict[str, deque[_Queued]] = {}
        self.expiry: dict[int, dict[str, int]] = {}  # partition -> key -> expires at
        self.newest: dict[int, int] = {}  # partition -> newest event time seen
        self.seen: dict[int, int] = {}
        # evaluate: the windows' working state (the table is what the changelog says), the
        # windows changed and dropped since the last changelog write, and the messages
        # that changed them, acked once written (_write_windows)
        self.live: dict[str, _Window] = {}
        self.dirty: set[str] = set()
        self.dropped: list[tuple[str, int]] = []
        self.unacked: list[Any] = []
        self._stream: Any = None
        self._evaluated: Any = None
        # Messages counted, not yet sent: flushed every FLUSH_EVERY_S, one message per
        # observations partition whatever the number of input messages.
        self.ready: list[_Message] = []
        self.partitions = settings.topic_partitions  # of the observations topic
        prefix = settings.topic_prefix
        self.entity_of = {topic_for(e, prefix): e for e in _INPUTS}
        app = self.app = faust.App(
            settings.alert_group,
            # faust's aiokafka transport with the idle fetch wait capped (alerts/transport.py)
            broker=broker_url(settings),
            broker_credentials=broker_credentials(settings),
            store="memory://",
            datadir=str(settings.alert_data_dir),
            web_enabled=False,
            autodiscover=False,
            value_serializer="raw",
            key_serializer="raw",
            consumer_auto_offset_reset="earliest",
            topic_partitions=settings.topic_partitions,
            topic_replication_factor=settings.topic_replication,
            topic_allow_declare=True,  # the tables' changelog topics
            producer_acks=-1,
            # Every window update is a changelog record: batch them (aiokafka's default
            # 16 KiB batches, sent without linger, held the evaluate stage to ~2k/s here).
            producer_linger=0.005,
            producer_max_batch_size=1024 * 1024,
            broker_commit_interval=settings.alert_commit_interval_s,
            broker_session_timeout=20.0,
            # Messages held for their session's user are not acked: faust must not wait
            # for them on a rebalance; the next owner replays them (and skips repeats).
            stream_wait_empty=False,
        )
        # Every window update is a changelog record, queued in faust's producer buffer; past
        # 100 queued, faust stops all streams and drains the buffer one message at a time
        # (a task and a 0.1 s wait_for each): most of the CPU when windows are many. The
        # buffer drains on its own task meanwhile; the commit flushes it whatever its size.
        app.producer.buffer.max_messages = PRODUCER_BUFFER_MAX
        table: dict[str, Any] = {
            "default": None,
            "schema": faust.Schema(key_serializer="json", value_serializer="json"),
        }
        self.users = app.Table("alerts-session-users", **table)
        self.types = app.Table("alerts-agent-types", **table)
        self.windows = app.Table("alerts-windows", **table)
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.inputs = app.topic(*self.entity_of, **raw)
        self.observations = app.topic(alert_observations_topic(prefix), **raw)
        self.alerts = app.topic(alerts_topic(prefix), **raw)
        agent: dict[str, Any] = {"concurrency": 1, "supervisor_strategy": mode.CrashingSupervisor}
        app.agent(self.inputs, name="agentstream.alerts.observe", **agent)(self._observe)
        app.agent(self.observations, name="agentstream.alerts.evaluate", **agent)(self._evaluate)
        app.timer(1.0)(self._release_waiting)
        app.timer(FLUSH_EVERY_S)(self._flush)
        app.timer(settings.alert_commit_interval_s)(self._write_windows)
        # faust types the receiver too narrowly for a bound method.
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    # --- observe -----------------------------------------------------------------------

    async def _observe(self, stream: Any) -> None:
        stream.enable_acks = False  # acked once every record of the message is counted
        self._stream = stream
        async for event in stream.events():
            msg = event.message
            entity = self.entity_of[msg.topic]
            decoded = decode(entity, msg.value or b"")
            ts = datetime.fromtimestamp(msg.timestamp, UTC) if msg.timestamp else None
            if entity in ("sessions", "agents"):
                key = f"{msg.topic}/{msg.partition}/{msg.offset}/"
                for i, r in decoded.records:
                    # an id-less session gets the id the sink gives it (its calls name it)
                    r = r.with_ingest_defaults(
                        id_key=key + str(i), ingest_time=ts or datetime.now(UTC)
                    )
                    if isinstance(r, Session):
                        self.users[str(r.id)] = r.user_id
                    elif isinstance(r, Agent):
                        self.types[str(r.id)] = r.type
                await stream.ack(event)
                for letter in _LETTER.values():
                    await self._drain(f"{letter}{msg.partition}")
                continue
            if entity not in self.observer.sources or not decoded.records:
                await stream.ack(event)
                continue
            # Calls and executions need no id here, only their event time: a missing one
            # is the Kafka timestamp, as the sink stores it (Record.with_ingest_defaults).
            source = f"{_LETTER[entity]}{msg.partition}"
            message = _Message(event, len(decoded.records), source, ts or datetime.now(UTC))
            queue = self.queues.setdefault(source, deque())
            now = time.monotonic()
            queue.extend(_Queued(msg.offset, i, r, now, message) for i, r in decoded.records)
            await self._drain(source)

    async def _drain(self, source: str, *, waited_s: float | None = None) -> None:
        """Count the queue's records from its head while their context is known (or, with
        ``waited_s``, while they have waited that long) into their message's tally; a
        message whose records are all counted is ready to send."""
        queue = self.queues.get(source)
        if not queue:
            return
        now = time.monotonic()
        while queue:
            item = queue[0]
            record = item.record
            if self.observer.missing_context(record, self.users, self.types):
                if waited_s is None or now - item.since < waited_s:
                    break
                self.metrics.context_timeouts.inc()
            queue.popleft()
            agent_id = getattr(record, "agent_id", None)
            context = Context(
                self.users.get(str(record.session_id)),  # type: ignore[attr-defined]
                None if agent_id is None else self.types.get(str(agent_id)),
            )
            message = item.message
            self.observer.add(
                message.tally,
                source,
                item.offset,
                item.index,
                record,
                context,
                ingest_time=message.ingest_time,
            )
            if isinstance(record, LLMInteraction | AgentExecution):
                self.metrics.records_observed.inc()
            message.remaining -= 1
            if message.remaining == 0:
                self.ready.append(message)

    async def _flush(self) -> None:
        """Send the contributions of the messages fully counted, packed by the partition
        their key hashes to, then ack those messages.

        A contribution covers one input message's records, never more: a replay after a
        crash or rebalance rebuilds the very same contributions, with the same positions,
        so that the evaluate stage can tell them apart (windows.py)."""
        ready, self.ready = self.ready, []
        packed: dict[int, list[Any]] = defaultdict(list)
        for message in ready:
            tally = message.tally
            if tally.late:
                self.metrics.records_late.inc(tally.late)
            for key, c in tally.contributions.items():
                packed[zlib.crc32(key) % self.partitions].append([key.decode(), c.to_json()])
        for partition, items in packed.items():
            await self.observations.send(value=json.dumps(items).encode(), partition=partition)
        for message in ready:
            await self._stream.ack(message.event)

    async def _release_waiting(self) -> None:
        for source in list(self.queues):
            await self._drain(source, waited_s=self.context_wait_s)

    def _on_assigned(self, app: Any, *args: Any, signal: Any, **_: Any) -> None:
        """Forget what belongs to partitions this process no longer holds: their messages
        were not acked, and their next owner reads them again. Partitions kept through the
        rebalance keep their queues - faust goes on reading them where it was, so a message
        dropped from a queue here would never come back."""
        (assigned,) = args  # faust sends on_partitions_assigned(assigned)
        held = {(tp.topic, tp.partition) for tp in assigned}
        sources = {
            f"{_LETTER[entity]}{partition}"
            for topic, partition in held
            if (entity := self.entity_of.get(topic)) in _LETTER
        }
        for source in [s for s in self.queues if s not in sources]:
            del self.queues[source]
        self.ready = [m for m in self.ready if m.source in sources]
        observations = self.observations.get_topic_name()
        for partition in [p for p in self.expiry if (observations, p) not in held]:
            del self.expiry[partition]
        # Windows of partitions gone are not written: their messages, not acked, are
        # replayed by the next owner from the changelog's state.
        kept = {p for topic, p in held if topic == observations}
        self.live = {k: w for k, w in self.live.items() if w.state.partition in kept}
        self.dirty = {k for k in self.dirty if k in self.live}
        self.dropped = [(k, p) for k, p in self.dropped if p in kept]
        self.unacked = [e for e in self.unacked if e.message.partition in kept]

    # --- evaluate ----------------------------------------------------------------------

    async def _evaluate(self, stream: Any) -> None:
        stream.enable_acks = False  # acked once the windows it changed are on the changelog
        self._evaluated = stream
        async for event in stream.events():
            partition = event.message.partition
            if partition not in self.expiry:
                await self._republish_fired(partition)
            for skey, raw in json.loads(event.value):
                window = self.live.get(skey)
                if window is None:
                    rule_name, group, start = decode_key(skey.encode())
                    rule = self.rules.get(rule_name)
                    if rule is None:  # a rule removed from the file since it was sent
                        continue
                    stored = self.windows.get(skey)
                    state = WindowState.from_json(stored) if stored else WindowState(partition)
                    window = self.live[skey] = _Window(rule, group, start, state)
                contribution = Contribution.from_json(raw)
                state, rule = window.state, window.rule
                if not state.apply(contribution):
                    self.metrics.replays_skipped.inc()
                    continue
                self.dirty.add(skey)
                now = datetime.now(UTC)
                for level, value in state.newly_reached(rule, now.isoformat()):
                    alert = self._alert(
                        rule, window.group, window.start, level, value, state.count, now
                    )
                    await self.alerts.send(
                        key=str(alert.id).encode(), value=alert.model_dump_json().encode()
                    )
                    self.metrics.alerts_fired.inc()
                    log.info("event=alert_fired %s", alert.text)
                self._expire(partition, skey, window.start + rule.window_s, contribution.event_time)
            self.unacked.append(event)

    async def _write_windows(self) -> None:
        """One changelog record per window changed since the last call (its state after its
        alerts were handed to the producer), then the acks of the messages that changed them.

        No await between the three steps: the records are in faust's producer buffer before
        the acks, and faust flushes the producer before it commits acked offsets, so a
        committed offset implies the windows it changed are on the changelog."""
        dirty, self.dirty = self.dirty, set()
        dropped, self.dropped = self.dropped, []
        acks, self.unacked = self.unacked, []
        changelog = self.windows.changelog_topic
        # tombstones first: a window dropped, then started afresh by a later contribution
        for skey, partition in dropped:
            changelog.send_soon(
                key=json.dumps(skey).encode(),
                value=None,
                partition=partition,
                key_serializer="raw",
                value_serializer="raw",
            )
        store = self.windows.data
        for skey in dirty:
            window = self.live[skey]
            value = window.state.to_json()
            store[skey] = value
            changelog.send_soon(
                key=json.dumps(skey).encode(),
                value=json.dumps(value, separators=(",", ":")).encode(),
                partition=window.state.partition,
                key_serializer="raw",
                value_serializer="raw",
            )
        for event in acks:
            await self._evaluated.ack(event)  # no await inside: the acks come after the sends

    async def _republish_fired(self, partition: int) -> None:
        """The alerts this partition's recovered windows fired, published again (see the
        module's docstring); indexes the windows for expiry."""
        index = self.expiry[partition] = {}
        again = 0
        for stored_key, value in list(self.windows.items()):
            if not value or value.get("p") != partition:
                continue
            name, group, start = decode_key(stored_key.encode())
            rule = self.rules.get(name)
            if rule is None:
                continue
            index[stored_key] = start + rule.window_s + self._keep_s()
            state = WindowState.from_json(value)
            for level in rule.levels:
                if level.name not in state.fired:
                    continue
                raw, count, at = state.fired[level.name]
                alert = self._alert(
                    rule, group, start, level, Decimal(raw), count, datetime.fromisoformat(at)
                )
                await self.alerts.send(
                    key=str(alert.id).encode(), value=alert.model_dump_json().encode()
                )
                again += 1
        if again:
            log.info("event=alerts_republished partition=%d alerts=%d", partition, again)

    def _alert(
        self,
        rule: Rule,
        group: str,
        start: int,
        level: Level,
        value: Any,
        count: int,
        fired_at: datetime,
    ) -> Alert:
        window_start = datetime.fromtimestamp(start, UTC)
        window_end = datetime.fromtimestamp(start + rule.window_s, UTC)
        shown, threshold = display_value(rule, value), display_value(rule, level.threshold)
        unit = " USD" if rule.metric == "cost_usd" else ""
        kind = f"{level.name} of the budget" if rule.budget is not None else "threshold"
        who = "all" if rule.group_by == "none" else f"{rule.group_by}={group}"
        text = (
            f"[{rule.name}] {rule.metric} for {who} reached {shown.normalize():f}{unit} "
            f"({kind} {threshold.normalize():f}{unit}) in the window "
            f"{window_start:%Y-%m-%d %H:%M}-{window_end:%H:%M} UTC ({count} records)"
        )
        return Alert(
            id=alert_id(rule.name, group, window_start, level.name),
            rule=rule.name,
            metric=rule.metric,
            group_by=rule.group_by,
            group_key=group,
            window_start=window_start,
            window_end=window_end,
            level=level.name,
            threshold=threshold,
            value=shown,
            count=count,
            fired_at=fired_at,
            text=text,
        )

    def _expire(self, partition: int, key: str, window_end: int, event_time: int) -> None:
        """Drop the partition's windows long past: from the table at once (a later
        contribution starts the window afresh), from the changelog with the next write."""
        index = self.expiry[partition]
        index[key] = window_end + self._keep_s()
        newest = self.newest[partition] = max(self.newest.get(partition, 0), event_time)
        seen = self.seen[partition] = self.seen.get(partition, 0) + 1
        if seen % _SWEEP_EVERY:
            return
        for old in [k for k, expires in index.items() if expires <= newest]:
            del index[old]
            self.live.pop(old, None)
            self.windows.data.pop(old, None)
            self.dirty.discard(old)
            self.dropped.append((old, partition))
            self.metrics.windows_expired.inc()

    def _keep_s(self) -> int:
        return self.settings.alert_lateness_s + EXPIRY_GRACE_S
