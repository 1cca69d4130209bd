"""agentstream: agent telemetry from SDK to Kafka to PostgreSQL to analytics.

The SDK is the package's face: ``from agentstream import AgentStream, SyncAgentStream``.
Its names load on first use (PEP 562), so that ``agentstream --help`` and the worker do not
pay for the producer's imports; what they pull in is only what ``pip install agentstream``
brings (aiokafka, pydantic). The worker (``agentstream.streams``, ``agentstream.sinks``) and
the analytics (``agentstream.analytics``) need the ``[worker]`` and ``[analytics]`` extras.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from agentstream.producers import (
        AgentHandle,
        AgentStream,
        AgentStreamError,
        BrokerUnavailable,
        DeliveryError,
        DeliveryFailure,
        DeliveryReport,
        ExecutionRun,
        LLMCall,
        ProducerStats,
        PublishTimeout,
        RecordBuilder,
        RecordTooLarge,
        SessionHandle,
        StreamClosed,
        SyncAgentHandle,
        SyncAgentStream,
        SyncExecutionRun,
        SyncLLMCall,
        SyncSessionHandle,
        UUID7Generator,
        ensure_topics,
        uuid7,
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
    "__version__",
    "ensure_topics",
    "uuid7",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("agentstream.producers"), name)
    raise AttributeError(f"module 'agentstream' has no attribute {name!r}")
