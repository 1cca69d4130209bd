"""Synthetic, realistic agent traffic for ``agentstream produce`` (the load generator).

Each simulated session is a little story told in causal order: the session opens, one to
three agents register, each runs a few executions (pending -> running -> completed/failed);
an execution makes LLM calls (several models, lognormal token counts, latency growing with
the response length, ~3% errors by default), emits events that carry its trace id (steps,
tool calls, retrievals, guardrail checks) and sometimes retrieves documents; at the end the
agents go idle and the session is closed with a newer ``updated_at``. Several sessions are
in flight at once and their records interleave, as on a real cluster.

Everything random comes from one seed. Timestamps follow a simulated timeline that starts
at ``start`` (default: now), so the same ``--seed`` and ``--start`` give byte-identical
records (ids included: uuid7 from the simulated time and seeded bits); the same ``--seed``
alone gives the same traffic shifted to the current time.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agentstream.contract.entities import (
    ENTITY_MODELS,
    Agent,
    AgentExecution,
    Document,
    Event,
    LLMInteraction,
    Record,
    Session,
)
from agentstream.contract.settings import Settings
from agentstream.producers.admin import ensure_topics
from agentstream.producers.client import AgentStream
from agentstream.producers.errors import DeliveryError, DeliveryFailure
from agentstream.producers.ids import UUID7Generator
from agentstream.producers.records import RecordBuilder

__all__ = [
    "DEFAULT_MODELS",
    "MODEL_PROFILES",
    "LoadOptions",
    "LoadSummary",
    "ModelProfile",
    "TrafficGenerator",
    "run_load",
]


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How a model behaves: typical token counts and how its latency grows with output."""

    provider: str
    prompt_median: int  # tokens
    response_median: int  # tokens
    base_latency_ms: float  # time to first token, roughly
    ms_per_output_token: float
    error_factor: float = 1.0  # relative to --error-rate
    reasoning: bool = False  # thinks before answering: part of its output is reasoning
    cache_writes: bool = False  # prompt caching billed on write (Anthropic), not only on read
    long_context: bool = False  # takes prompts past 200k tokens (priced higher there)


# Plausible orders of magnitude (not a benchmark of any vendor). The hosted models are in
# the shipped price table (analytics/data/prices.json); the self-hosted llama has no list
# price, so reports show how an unpriced model is flagged rather than costed at $0.
MODEL_PROFILES: dict[str, ModelProfile] = {
    "gpt-4o": ModelProfile("openai", 1200, 320, 420, 11.0),
    "gpt-4o-mini": ModelProfile("openai", 900, 260, 260, 6.0, 0.8),
    "claude-sonnet-4-5": ModelProfile(
        "anthropic", 1500, 380, 520, 13.0, reasoning=True, cache_writes=True, long_context=True
    ),
    "claude-haiku-4-5": ModelProfile("anthropic", 800, 220, 300, 5.5, 0.8, cache_writes=True),
    "gemini-2.5-pro": ModelProfile("google", 1400, 350, 480, 12.0, 1.2, True, long_context=True),
    "llama-3.1-70b-selfhosted": ModelProfile("self-hosted", 1000, 300, 350, 9.0, 1.5),
}
DEFAULT_MODELS: tuple[str, ...] = tuple(MODEL_PROFILES)
_UNKNOWN_MODEL = ModelProfile("unknown", 1000, 300, 400, 10.0)
# Service tiers as the calls name them, and how often: most traffic is interactive; batch
# jobs (half price) and flex/priority tiers are the minority that makes costs differ.
_SERVICE_TIERS = (("default", 0.84), ("batch", 0.08), ("flex", 0.04), ("priority", 0.04))
# How often an agent's calls hit the prompt cache: an agent with a long fixed system prompt
# and tools hits most of the time, a one-shot router rarely.
_CACHE_HIT_RATES = (0.0, 0.2, 0.5, 0.8, 0.95)
_FINISH_REASONS = (("stop", 0.8), ("tool_calls", 0.15), ("length", 0.05))


def _weighted(rng: random.Random, choices: Sequence[tuple[str, float]]) -> str:
    names = [name for name, _ in choices]
    return rng.choices(names, [weight for _, weight in choices])[0]


@dataclass(frozen=True, slots=True)
class _AgentModel:
    """An agent's usual model and how often its calls hit the prompt cache."""

    model: str
    cache_hit_rate: float


_AGENT_NAMES = ("planner", "researcher", "coder", "critic", "summarizer", "retriever", "router")
_AGENT_TYPES = ("react", "plan-and-execute", "tool-use", "reflexion", "conversational")
_TOOLS = ("web_search", "sql_query", "python", "calculator", "vector_search", "http_get")
_CHANNELS = ("web", "api", "slack", "cli")
_LLM_ERRORS = (
    "RateLimitError: 429 Too Many Requests (rate_limit_exceeded)",
    "APITimeoutError: request timed out after 30s",
    "BadRequestError: context_length_exceeded",
    "APIError: 502 Bad Gateway",
    "APIError: 529 overloaded",
)
_KB_AREAS = ("docs", "wiki", "tickets")
_CONTENT_TYPES = ("text/plain", "text/markdown", "text/html", "application/json")
_WORD_TEXT = (
    "the agent plan step tool result query answer user context document source retrieve "
    "summarize compare table revenue latency model token cost error retry cache vector "
    "index customer order invoice report region quarter growth forecast policy refund "
    "shipping account billing analysis chart insight recommendation risk compliance audit"
)
_WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())


@dataclass(slots=True)
class LoadOptions:
    """What ``agentstream produce`` asks for; one of ``sessions``/``duration_s`` bounds it."""

    sessions: int | None = None
    duration_s: float | None = None
    rate: float | None = None  # records per second; None: as fast as possible
    seed: int | None = None
    models: Sequence[str] = DEFAULT_MODELS
    error_rate: float = 0.03
    concurrency: int = 8  # sessions in flight at once, interleaved
    start: datetime | None = None
    session_gap_s: float = 2.0  # mean simulated time between session starts

    def __post_init__(self) -> None:
        if self.sessions is None and self.duration_s is None:
            raise ValueError("bound the run with sessions=N or duration_s=S")
        if self.sessions is not None and self.sessions < 1:
            raise ValueError(f"sessions must be at least 1, got {self.sessions}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration must be positive, got {self.duration_s}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"rate must be positive records/s, got {self.rate}")
        if not 0 <= self.error_rate <= 1:
            raise ValueError(f"error rate must be within 0..1, got {self.error_rate}")
        if not self.models:
            raise ValueError("give at least one model")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.session_gap_s <= 0:
            raise ValueError(f"session gap must be positive seconds, got {self.session_gap_s}")


class _Clock:
    """A session's simulated time, moved forward by the story."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def advance_ms(self, ms: float) -> datetime:
        self.at += timedelta(milliseconds=max(ms, 1.0))
        return self.at

    @property
    def ms(self) -> int:
        return int(self.at.timestamp() * 1000)


class TrafficGenerator:
    """Deterministic stream of records: ``records()`` yields them in publish order."""

    def __init__(
        self,
        *,
        seed: int,
        models: Sequence[str] = DEFAULT_MODELS,
        error_rate: float = 0.03,
        concurrency: int = 8,
        start: datetime | None = None,
        session_gap_s: float = 2.0,
        validate: bool = True,
    ) -> None:
        self.seed = seed
        self._rng = random.Random(seed)
        self._ids = UUID7Generator(rng=random.Random(seed ^ 0x5EED))
        self._build = RecordBuilder(validate=validate).build
        self.models = list(models)
        self.error_rate = error_rate
        self.concurrency = concurrency
        self._next_start = start or datetime.now(UTC)
        self._session_gap_ms = session_gap_s * 1000
        self.sessions_started = 0
        self.sessions_done = 0

    # -------------------------------------------------------------- orchestration

    def records(self, more_sessions: Callable[[int], bool]) -> Iterator[Record]:
        """Interleave sessions; start another while ``more_sessions(started)`` says so."""
        rng = self._rng
        active: list[Iterator[Record]] = []
        while True:
            while len(active) < self.concurrency and more_sessions(self.sessions_started):
                active.append(self._session())
                self.sessions_started += 1
            if not active:
                return
            i = rng.randrange(len(active))
            try:
                yield next(active[i])
            except StopIteration:
                active[i] = active[-1]
                active.pop()
                self.sessions_done += 1

    # -------------------------------------------------------------- one session

    def _lognormal(self, median: float, sigma: float) -> float:
        return self._rng.lognormvariate(math.log(median), sigma)

    def _text(self, words: int) -> str:
        return " ".join(self._rng.choices(_WORDS, k=max(1, words)))

    def _session(self) -> Iterator[Record]:
        rng = self._rng
        # Sessions arrive as a Poisson process, ``session_gap_s`` apart on average on the
        # simulated timeline (records are published as fast as --rate allows regardless).
        self._next_start += timedelta(milliseconds=rng.expovariate(1 / self._session_gap_ms))
        clock = _Clock(self._next_start)
        user_id = f"user-{rng.randint(1, 500):04d}"
        session_id = self._ids(clock.ms)
        created = clock.at
        metadata: dict[str, Any] = {
            "source": "agentstream-loadgen",
            "channel": rng.choice(_CHANNELS),
            "client_version": f"1.{rng.randint(0, 9)}.{rng.randint(0, 20)}",
        }
        yield self._build(
            Session,
            id=session_id,
            user_id=user_id,
            created_at=created,
            updated_at=created,
            metadata=metadata,
        )
        agents = []
        for name in rng.sample(_AGENT_NAMES, k=rng.randint(1, 3)):
            at = clock.advance_ms(rng.uniform(5, 50))
            agent_model = rng.choice(self.models)
            fields: dict[str, Any] = {
                "id": self._ids(clock.ms),
                "name": name,
                "type": rng.choice(_AGENT_TYPES),
                "configuration": {
                    "model": agent_model,
                    "temperature": round(rng.uniform(0, 1), 2),
                    "max_steps": rng.randint(3, 12),
                    "tools": rng.sample(_TOOLS, k=rng.randint(1, 3)),
                },
                "status": "active",
                "session_id": session_id,
                "created_at": at,
                "updated_at": at,
            }
            agents.append((fields, agent_model, rng.choice(_CACHE_HIT_RATES)))
            yield self._build(Agent, **fields)
        for fields, agent_model, cache_hits in agents:
            for _ in range(rng.randint(1, 4)):
                yield from self._execution(
                    clock, session_id, user_id, fields["id"], _AgentModel(agent_model, cache_hits)
                )
        for fields, _, _ in agents:
            idle_at = clock.advance_ms(rng.uniform(1, 20))
            yield self._build(Agent, **{**fields, "status": "idle", "updated_at": idle_at})
        ended = clock.advance_ms(rng.uniform(1, 50))
        yield self._build(
            Session,
            id=session_id,
            user_id=user_id,
            created_at=created,
            updated_at=ended,
            metadata={**metadata, "ended": True, "agents": len(agents)},
        )

    def _execution(
        self,
        clock: _Clock,
        session_id: uuid.UUID,
        user_id: str,
        agent_id: uuid.UUID,
        agent: _AgentModel,
    ) -> Iterator[Record]:
        rng = self._rng
        exec_id = self._ids(clock.ms)
        trace_id = self._ids(clock.ms)
        task = self._text(rng.randint(6, 20))
        base: dict[str, Any] = {
            "id": exec_id,
            "agent_id": agent_id,
            "session_id": session_id,
            "input_data": {"task": task, "priority": rng.choice(["low", "normal", "high"])},
        }
        queued = clock.advance_ms(rng.uniform(1, 30))
        yield self._build(AgentExecution, **base, status="pending", started_at=queued)
        started = clock.advance_ms(rng.expovariate(1 / 80))
        yield self._build(AgentExecution, **base, status="running", started_at=started)

        def event(event_type: str, payload: dict[str, Any]) -> Event:
            at = clock.advance_ms(rng.uniform(1, 15))
            return self._build(
                Event,
                id=self._ids(clock.ms),
                event_type=event_type,
                trace_id=trace_id,
                session_id=session_id,
                user_id=user_id,
                timestamp_ms=clock.ms,
                payload=payload,
                created_at=at,
            )

        yield event("agent.step", {"step": 0, "action": "plan"})
        failures = 0
        calls = rng.randint(1, 4)
        for step in range(1, calls + 1):
            model = agent.model if rng.random() < 0.7 else rng.choice(self.models)
            call = self._llm_call(clock, session_id, agent_id, model, agent.cache_hit_rate)
            failures += not call.success
            yield call
            if call.success and rng.random() < 0.6:
                tool = rng.choice(_TOOLS)
                yield event("tool.call", {"tool": tool, "step": step, "args": {"q": self._text(4)}})
                clock.advance_ms(self._lognormal(120, 1.0))  # the tool runs
                ok = rng.random() > 0.05
                items = rng.randint(0, 20)
                yield event("tool.result", {"tool": tool, "step": step, "ok": ok, "items": items})
            if rng.random() < 0.3:
                query = {"k": rng.choice([4, 8, 16]), "query": self._text(6)}
                yield event("retrieval.query", query)
                yield self._document(clock, session_id, agent_id)
            if rng.random() < 0.1:
                yield event("guardrail.check", {"policy": "pii", "passed": rng.random() > 0.02})
        if rng.random() < 0.05:
            yield event("user.feedback", {"rating": rng.randint(1, 5)})
        # An execution fails when its last call failed, or (rarely) on its own.
        failed = (failures and not call.success) or rng.random() < self.error_rate / 3
        done = clock.advance_ms(rng.uniform(2, 40))
        answer = self._text(rng.randint(10, 40))
        yield self._build(
            AgentExecution,
            **base,
            status="failed" if failed else "completed",
            started_at=started,
            completed_at=done,
            output_data=None if failed else {"answer": answer, "steps": calls},
            error_message=(call.error_message or "AgentError: step limit reached")
            if failed
            else None,
        )

    def _llm_call(
        self,
        clock: _Clock,
        session_id: uuid.UUID,
        agent_id: uuid.UUID,
        model: str,
        cache_hit_rate: float,
    ) -> LLMInteraction:
        rng = self._rng
        profile = MODEL_PROFILES.get(model, _UNKNOWN_MODEL)
        created = clock.advance_ms(rng.uniform(1, 10))
        call_id = self._ids(clock.ms)
        prompt_tokens = min(int(self._lognormal(profile.prompt_median, 0.7)) + 1, 120_000)
        if profile.long_context and rng.random() < 0.02:
            prompt_tokens = rng.randint(200_001, 600_000)  # a whole codebase or report
        response_tokens = min(int(self._lognormal(profile.response_median, 0.8)) + 1, 8_000)
        latency = profile.base_latency_ms + profile.ms_per_output_token * response_tokens
        latency *= self._lognormal(1.0, 0.25)
        error: str | None = None
        if rng.random() < min(1.0, self.error_rate * profile.error_factor):
            error = rng.choice(_LLM_ERRORS)
            response_tokens = 0
            latency = 30_000 if "timed out" in error else self._lognormal(150, 0.5)
        clock.advance_ms(latency)
        details: dict[str, Any] = {}
        if error is None:
            details = self._usage(profile, cache_hit_rate, prompt_tokens, response_tokens, latency)
        details["provider"] = profile.provider
        details["service_tier"] = _weighted(rng, _SERVICE_TIERS)
        # Texts are short samples (a few hundred characters), not the full prompt: the token
        # counts carry the size; the bytes stay modest so the load tests the pipeline, not I/O.
        return self._build(
            LLMInteraction,
            id=call_id,
            session_id=session_id,
            agent_id=agent_id,
            prompt=self._text(min(prompt_tokens // 8, 60)),
            response=None if error else self._text(min(response_tokens // 4, 60)),
            model=model,
            prompt_tokens=prompt_tokens,
            response_tokens=response_tokens,
            latency_ms=int(latency),
            success=error is None,
            error_message=error,
            created_at=created,
            **details,
        )

    def _usage(
        self,
        profile: ModelProfile,
        cache_hit_rate: float,
        prompt_tokens: int,
        response_tokens: int,
        latency: float,
    ) -> dict[str, Any]:
        """A successful call's usage details, consistent by the contract's rules (cache counts
        within the prompt, reasoning within the response, first token before the end)."""
        rng = self._rng
        usage: dict[str, Any] = {"finish_reason": _weighted(rng, _FINISH_REASONS)}
        if profile.provider != "self-hosted":
            hit = rng.random() < cache_hit_rate
            usage["cache_read_tokens"] = int(prompt_tokens * rng.uniform(0.5, 0.95)) if hit else 0
            if profile.cache_writes and not hit and rng.random() < 0.4:
                usage["cache_write_tokens"] = int(prompt_tokens * rng.uniform(0.3, 0.8))
        if profile.reasoning:
            usage["reasoning_tokens"] = int(response_tokens * rng.uniform(0.2, 0.8))
        if rng.random() < 0.7:  # streamed: the first token comes after the prompt is read
            usage["time_to_first_token_ms"] = int(
                min(latency, profile.base_latency_ms * self._lognormal(1.0, 0.3))
            )
        return usage

    def _document(self, clock: _Clock, session_id: uuid.UUID, agent_id: uuid.UUID) -> Document:
        rng = self._rng
        at = clock.advance_ms(rng.uniform(5, 60))
        doc_id = self._ids(clock.ms)
        title = self._text(rng.randint(3, 8)).title()
        return self._build(
            Document,
            id=doc_id,
            session_id=session_id,
            agent_id=agent_id,
            title=title,
            content=self._text(rng.randint(40, 250)),
            content_type=rng.choice(_CONTENT_TYPES),
            source_url=f"https://kb.example.com/{rng.choice(_KB_AREAS)}/{doc_id.hex[:12]}",
            metadata={"score": round(rng.uniform(0.3, 0.99), 3), "chunk": rng.randint(0, 40)},
            created_at=at,
        )


@dataclass(slots=True)
class LoadSummary:
    """What a run produced: per-entity counts, bytes, time, rate, and what was not delivered."""

    seed: int
    sessions: int
    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITY_MODELS, 0))
    bytes: int = 0
    batches: int = 0
    seconds: float = 0.0
    undelivered: int = 0
    failures: list[DeliveryFailure] = field(default_factory=list)
    topics_created: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.records.values())

    @property
    def rate(self) -> float:
        return self.total / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "sessions": self.sessions,
            "records": dict(self.records),
            "total_records": self.total,
            "bytes": self.bytes,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "records_per_s": round(self.rate, 1),
            "undelivered": self.undelivered,
            "topics_created": self.topics_created,
        }


ProgressFn = Callable[[int, int, float], None]  # (sessions done, records, elapsed seconds)


async def run_load(
    settings: Settings, options: LoadOptions, progress: ProgressFn | None = None
) -> LoadSummary:
    """Create the topics if missing, then publish synthetic traffic until the bound."""
    seed = options.seed if options.seed is not None else int.from_bytes(os.urandom(4))
    created = await ensure_topics(settings)
    gen = TrafficGenerator(
        seed=seed,
        models=options.models,
        error_rate=options.error_rate,
        concurrency=options.concurrency,
        start=options.start,
        session_gap_s=options.session_gap_s,
        validate=settings.producer_validate,
    )
    t0 = time.monotonic()
    deadline = t0 + options.duration_s if options.duration_s is not None else math.inf
    limit = options.sessions if options.sessions is not None else math.inf

    def more_sessions(started: int) -> bool:
        return started < limit and time.monotonic() < deadline

    summary = LoadSummary(seed=seed, sessions=0, topics_created=created)
    rate = options.rate
    # Pace in small steps: check the clock every `chunk` records (each record at low rates).
    chunk = 1 if rate is None or rate < 2000 else 100
    count = 0
    last_report = 0.0
    async with AgentStream(settings) as stream:
        try:
            for record in gen.records(more_sessions):
                await stream.publish(record)
                count += 1
                if count % chunk == 0:
                    now = time.monotonic()
                    if rate is not None:
                        ahead = t0 + count / rate - now
                        if ahead > 0:
                            await asyncio.sleep(ahead)
                    if progress is not None and now - last_report >= 0.2:
                        last_report = now
                        progress(gen.sessions_done, count, now - t0)
            await stream.flush()
        except DeliveryError as exc:
            summary.failures.extend(exc.failures)
        report = await stream.close(raise_on_failure=False)
        summary.failures.extend(report.failures)
        stats = stream.stats
    summary.seconds = time.monotonic() - t0
    summary.sessions = gen.sessions_done
    summary.records = dict(stats.published)
    summary.bytes = stats.bytes_published
    summary.batches = stats.delivered_batches
    summary.undelivered = sum(f.records for f in summary.failures)
    if progress is not None:
        progress(gen.sessions_done, count, summary.seconds)
    return summary
