"""The producer SDK: agents instrument themselves with it, the load generator runs on it.

Import it as ``from agentstream import AgentStream`` (the package re-exports this API). It
needs only what ``pip install agentstream`` brings: nothing here may import the worker's or
the analytics' dependencies (tests/test_packaging.py checks).

Public API:

* :class:`AgentStream` — asyncio client (``async with AgentStream() as stream``);
  :class:`SyncAgentStream` — the same for non-async code (the async client on a background
  thread, ``with SyncAgentStream() as stream``). Both flush on exit.
* Helpers, from ``stream.start_session(...)``: :class:`SessionHandle`, :class:`AgentHandle`,
  :class:`ExecutionRun` (``agent.execute``), :class:`LLMCall` (``*.llm_call``), and
  ``event``/``document`` on each of them.
* Errors: :class:`PublishTimeout`, :class:`DeliveryError` (with :class:`DeliveryFailure`),
  :class:`RecordTooLarge`, :class:`BrokerUnavailable`, :class:`StreamClosed`.
* :func:`uuid7` — time-ordered ids; :func:`ensure_topics` — create the entity topics.
"""

from agentstream.producers.admin import ensure_topics
from agentstream.producers.client import AgentStream, DeliveryReport, ProducerStats
from agentstream.producers.errors import (
    AgentStreamError,
    BrokerUnavailable,
    DeliveryError,
    DeliveryFailure,
    PublishTimeout,
    RecordTooLarge,
    StreamClosed,
)
from agentstream.producers.helpers import AgentHandle, ExecutionRun, LLMCall, SessionHandle
from agentstream.producers.ids import UUID7Generator, uuid7
from agentstream.producers.records import RecordBuilder
from agentstream.producers.sync import (
    SyncAgentHandle,
    SyncAgentStream,
    SyncExecutionRun,
    SyncLLMCall,
    SyncSessionHandle,
)

__all__ = [
    "AgentHandle",
    "AgentStream",
    "AgentStreamError",
    "BrokerUnavailable",
    "DeliveryError",
    "DeliveryFailure",
    "DeliveryReport",
    "ExecutionRun",
    "LLMCall",
    "ProducerStats",
    "PublishTimeout",
    "RecordBuilder",
    "RecordTooLarge",
    "SessionHandle",
    "StreamClosed",
    "SyncAgentHandle",
    "SyncAgentStream",
    "SyncExecutionRun",
    "SyncLLMCall",
    "SyncSessionHandle",
    "UUID7Generator",
    "ensure_topics",
    "uuid7",
]
