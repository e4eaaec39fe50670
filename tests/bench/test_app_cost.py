"""bench.app_cost serves every request through the real app, alone and concurrently (a smoke
run; no timing is asserted)."""

from __future__ import annotations

import uvloop

from bench.app_cost import InstantModel, measure
from service.runtime.contract import Reads, ServedModel


def test_the_instant_model_is_a_served_model_that_reads() -> None:
    model = InstantModel()
    assert isinstance(model, ServedModel) and isinstance(model, Reads)


def test_every_request_is_answered_at_both_concurrencies() -> None:
    # measure raises if any answer is not a 200, so the figures are of served requests.
    result = uvloop.run(measure(requests=128, repeats=1))
    assert set(result) == {"c=1", "c=64"}
    assert all(us > 0 for us in result.values())
