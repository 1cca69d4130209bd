"""Every case of the hostile corpus decodes to exactly the valid and invalid records it holds."""

from __future__ import annotations

import pytest

from agentstream.contract import decode
from tests.support.corpus import Case, build_corpus

CORPUS = build_corpus()


def test_the_corpus_has_at_least_forty_kinds() -> None:
    assert len({c.name for c in CORPUS}) >= 40


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_case_decodes_as_expected(case: Case) -> None:
    decoded = decode(case.entity, case.value)
    assert len(decoded.records) == case.valid, [i.reason for i in decoded.invalid]
    assert len(decoded.invalid) == case.invalid, [i.reason for i in decoded.invalid]
    assert all(i.reason for i in decoded.invalid)
    assert {str(r.id) for _, r in decoded.records} == set(case.valid_ids)
