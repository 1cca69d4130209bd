"""Bad command-line values are refused up front with a usage error, never run with."""

from __future__ import annotations

import pytest

from agentstream.cli.main import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["worker", "--batch-records", "0"], "--batch-records: must be at least 1"),
        (["worker", "--batch-seconds", "-1"], "--batch-seconds: must be positive"),
        (["worker", "--metrics-port", "70000"], "--metrics-port: must be a TCP port"),
        (["status", "--timeout", "0"], "--timeout: must be positive"),
        (["dlq", "show", "--limit", "-1"], "--limit: must be at least 1"),
        (["produce", "--sessions", "0"], "--sessions: must be at least 1"),
        (["produce", "--duration", "nan"], "--duration: must be positive"),
        (["produce", "--sessions", "1", "--session-gap", "0"], "--session-gap: must be positive"),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err


def test_replay_needs_a_selection_or_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dlq", "replay"]) == 2
    assert "or --all for every one" in capsys.readouterr().err
