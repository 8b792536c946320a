"""A few kill -9 points of the crash sweep (the full sweep is `make reliability`): after each, a normal run
leaves facts equal to a clean load's, on a first load and on a rerun with upstream changes."""

from __future__ import annotations

from tests.crash_sweep import sweep


def test_kill_9_at_spread_moments_then_a_normal_run_equals_a_clean_load(tmp_path):
    results = sweep(tmp_path, points=2)
    assert [(r.variant, r.recovered, r.detail) for r in results] == [
        (r.variant, True, "") for r in results]
    assert len(results) == 4 and {r.variant for r in results} == {"first load", "rerun with changes"}
    # the moments fall in different steps, not all in one
    assert len({r.step for r in results}) >= 2
