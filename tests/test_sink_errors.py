"""Error classification: by exception class and SQLSTATE (no services needed)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from agentstream.sinks.postgres.errors import classify, terminal_advice


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (errors.CheckViolation(), "data"),
        (errors.NumericValueOutOfRange(), "data"),
        (errors.InvalidTextRepresentation(), "data"),
        (errors.UntranslatableCharacter(), "data"),
        (errors.ProgramLimitExceeded(), "data"),
        (errors.SerializationFailure(), "transient"),
        (errors.DeadlockDetected(), "transient"),
        (errors.AdminShutdown(), "transient"),
        (errors.CannotConnectNow(), "transient"),
        (errors.ConnectionFailure(), "transient"),
        (errors.DiskFull(), "transient"),
        (psycopg.OperationalError("connection refused"), "transient"),  # no SQLSTATE
        (ConnectionResetError(), "transient"),
        (errors.UndefinedTable(), "terminal"),
        (errors.InsufficientPrivilege(), "terminal"),
        (errors.InvalidPassword(), "terminal"),
        (errors.SyntaxError(), "terminal"),
        (ValueError("a bug"), "terminal"),
    ],
)
def test_errors_are_classified_by_class_and_sqlstate(exc: BaseException, outcome: str) -> None:
    assert classify(exc) == outcome


def test_terminal_errors_say_what_to_do() -> None:
    assert "agentstream migrate" in terminal_advice(errors.UndefinedTable())
    assert "AGENTSTREAM_DATABASE_URL" in terminal_advice(errors.InvalidPassword())
    assert "grant" in terminal_advice(errors.InsufficientPrivilege())


def test_a_dead_letter_too_large_for_the_topic_is_cut_and_says_so() -> None:
    from agentstream.contract.deadletter import DeadLetter, ErrorKind
    from agentstream.streams.deadletters import fit_for_topic

    big = DeadLetter(ErrorKind.DECODE, "too large", "events", "t", 0, 7, None, b"x" * 11 * 2**20)
    cut = fit_for_topic(big)
    assert len(cut.value) < 10 * 2**20 and cut.value == big.value[: len(cut.value)]
    assert "cut to its first" in cut.reason and cut.offset == 7
    small = DeadLetter(ErrorKind.DECODE, "bad", "events", "t", 0, 8, None, b"{")
    assert fit_for_topic(small) is small
