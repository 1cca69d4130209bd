"""Every case of the hostile corpus decodes to exactly the valid and invalid records it holds."""

from __future__ import annotations

import pytest

from agentstream.contract import ErrorKind, decode
from tests.support.corpus import Case, build_corpus

CORPUS = build_corpus()


def test_the_corpus_has_at_least_forty_kinds() -> None:
    assert len({c.name for c in CORPUS}) >= 40


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_case_decodes_as_expected(case: Case) -> None:
    decoded = decode(case.entity, case.value)
    if case.caught_by == "database":  # the codec lets it through; PostgreSQL refuses it
        assert len(decoded.records) == case.valid + case.invalid and not decoded.invalid
        return
    assert len(decoded.records) == case.valid, [i.reason for i in decoded.invalid]
    assert len(decoded.invalid) == case.invalid, [i.reason for i in decoded.invalid]
    assert all(i.reason for i in decoded.invalid)
    assert {str(r.id) for _, r in decoded.records} == set(case.valid_ids)


def test_prescanned_and_fully_checked_messages_agree() -> None:
    """The pre-scan only skips a walk that could not find anything: same verdicts either way."""
    word_nan = b'{"user_id": "NaN Infinity", "metadata": {"note": "NaN"}}'
    assert len(decode("sessions", word_nan).records) == 1  # a false alarm: walked, valid
    nul_key = b'{"user_id": "u", "metadata": {"a\\u0000": 1}}'
    [bad] = decode("sessions", nul_key).invalid
    assert "metadata" in bad.reason and "NUL" in bad.reason


def test_every_rejection_carries_its_kind_from_the_codec() -> None:
    kinds: set[ErrorKind] = set()
    for case in CORPUS:
        for bad in decode(case.entity, case.value).invalid:
            assert isinstance(bad.kind, ErrorKind)
            # The wording follows the kind, not the other way round (nothing parses reasons).
            assert (bad.kind is ErrorKind.VALIDATION) == bad.reason.startswith("invalid record")
            kinds.add(bad.kind)
    assert kinds == {ErrorKind.DECODE, ErrorKind.VALIDATION}
