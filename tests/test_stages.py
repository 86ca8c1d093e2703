"""stages.py: the stage contract's run order and what `--only STAGE` runs and reads."""
from __future__ import annotations

import pytest

from convnet_search.stages.base import STAGE_NAMES, Stage, plan


def _noop(ctx) -> None:
    pass


def _stages() -> tuple[Stage, ...]:
    return (Stage("a", _noop, _noop), Stage("b", _noop, _noop, ("a",)), Stage("c", _noop, _noop, ("a",)),
            Stage("d", _noop, _noop, ("b",)), Stage("e", _noop, _noop, ("a", "b", "c", "d")))


def test_a_full_run_runs_every_stage_in_order():
    assert [(s.name, how) for s, how in plan(_stages(), None)] == [(n, "run") for n in "abcde"]


def test_only_runs_that_stage_and_loads_what_it_needs_transitively_in_order():
    assert [(s.name, how) for s, how in plan(_stages(), "d")] == [("a", "load"), ("b", "load"), ("d", "run")]
    assert [(s.name, how) for s, how in plan(_stages(), "a")] == [("a", "run")]
    assert [how for _, how in plan(_stages(), "e")] == ["load"] * 4 + ["run"]


def test_an_unknown_stage_is_refused_with_the_list():
    with pytest.raises(ValueError, match="unknown stage 'z'; stages: a, b, c, d, e"):
        plan(_stages(), "z")


def test_the_pipeline_follows_the_names_and_every_stage_needs_only_earlier_ones():
    from convnet_search.pipeline import STAGES

    assert tuple(s.name for s in STAGES) == STAGE_NAMES
    for i, stage in enumerate(STAGES):
        assert set(stage.needs) <= set(STAGE_NAMES[:i]), stage.name
        assert stage.name == "datasets" or "datasets" in stage.needs  # every fingerprint starts there
