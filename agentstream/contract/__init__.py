"""The contract every layer shares: entity models, topic names, wire codec, dead letters, settings.

This package imports no other layer of agentstream; every layer may import it.
"""

from agentstream.contract.codec import Decoded, InvalidRecord, decode, encode_batch, encode_record
from agentstream.contract.deadletter import DeadLetter, ErrorKind
from agentstream.contract.entities import (
    ENTITY_MODELS,
    EXECUTION_STATUS_RANK,
    Agent,
    AgentExecution,
    Document,
    Event,
    LLMInteraction,
    Record,
    Session,
)
from agentstream.contract.settings import Settings, get_settings, redact_url
from agentstream.contract.topics import ENTITIES, dlq_topic, entity_of_topic, topic_for

__all__ = [
    "ENTITIES",
    "ENTITY_MODELS",
    "EXECUTION_STATUS_RANK",
    "Agent",
    "AgentExecution",
    "DeadLetter",
    "Decoded",
    "Document",
    "ErrorKind",
    "Event",
    "InvalidRecord",
    "LLMInteraction",
    "Record",
    "Session",
    "Settings",
    "decode",
    "dlq_topic",
    "encode_batch",
    "encode_record",
    "entity_of_topic",
    "get_settings",
    "redact_url",
    "topic_for",
]
