"""bench.protocol_cost serves every request through both protocols (a smoke run; no timing
is asserted)."""

from __future__ import annotations

import uvloop

from bench.protocol_cost import _compare


def test_both_protocols_answer_every_request() -> None:
    result = uvloop.run(_compare(requests=200, repeats=1))
    assert set(result) == {"httptools", "guarded"}
    assert all(us > 0 for us in result.values())
