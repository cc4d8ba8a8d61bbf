"""Batches by duration and speed perturbation: the planner's promises (every batch within its budget,
every clip at least once an epoch, the same steps on every rank and in every epoch) over random
corpora, and the perturbation's determinism (runner/epochs.py, runner/perturb.py, runner/batching.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctc_tui.runner import batching, perturb
from ctc_tui.runner.epochs import horizon, make_planner

RATE = 16_000
corpora = st.lists(st.integers(min_value=RATE // 10, max_value=20 * RATE), min_size=1, max_size=300)


def planner_for(lengths, budget_s=40.0, replicas=2, factors=(), buckets=4, drop_last=False, seed=0):
    everything = perturb.all_lengths(lengths, factors)
    bounds = batching.bucket_boundaries(everything, buckets)
    budget = max(int(budget_s * RATE), bounds[-1])  # at least one clip of the longest bucket fits
    return make_planner(lengths, bounds, budget, 8, replicas, seed, drop_last, factors), budget


@settings(max_examples=60, deadline=None)
@given(
    lengths=corpora,
    replicas=st.integers(1, 4),
    budget_s=st.floats(1.0, 120.0),
    perturbed=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_every_batch_fits_its_budget_every_clip_is_used_every_rank_steps_alike(
    lengths, replicas, budget_s, perturbed, seed
):
    factors = (0.9, 1.0, 1.1) if perturbed else ()
    planner, budget = planner_for(lengths, budget_s, replicas, factors, seed=seed)
    epochs = 3
    steps = planner.fix_steps(epochs)
    for epoch in range(epochs):
        epoch_lengths, _ = planner.epoch_lengths(epoch)
        plan = planner.plan(epoch)
        assert len(plan) == steps == len(planner)  # every epoch alike, whatever its factors
        seen = Counter()
        for step in plan:
            assert len(step) == replicas  # one batch per rank at every step: nobody waits
            assert len({len(batch) for batch in step}) == 1  # one shape across the ranks
            for batch in step:
                indices = [planner.decode(k)[0] for k in batch]
                width = batching.bucket_length(int(epoch_lengths[indices].max()), planner.boundaries)
                assert width is not None and width * len(batch) <= budget
                seen.update(indices)
        assert set(seen) == set(range(len(lengths)))  # all clips, at least once an epoch


@settings(max_examples=40, deadline=None)
@given(lengths=corpora, replicas=st.integers(1, 4), budget_s=st.floats(1.0, 120.0))
def test_without_perturbation_clips_are_used_once_but_for_the_last_steps_top_up(lengths, replicas, budget_s):
    planner, _ = planner_for(lengths, budget_s, replicas)
    plan = planner.plan(0)
    assert len(plan) == batching.count_steps(lengths, planner.boundaries, planner.batch_size, replicas)
    counts = Counter(i for step in plan for batch in step for i in batch)
    # only the epoch's last group is filled up with clips already used: at most one group's worth
    biggest_group = max(planner.batch_size) * replicas
    assert sum(c - 1 for c in counts.values()) < biggest_group


@settings(max_examples=40, deadline=None)
@given(lengths=corpora, replicas=st.integers(1, 4))
def test_drop_last_uses_each_clip_at_most_once(lengths, replicas):
    planner, _ = planner_for(lengths, 30.0, replicas, drop_last=True)
    counts = Counter(i for step in planner.plan(1) for batch in step for i in batch)
    assert all(c == 1 for c in counts.values())


def test_budget_sizes_fill_the_budget_bucket_by_bucket():
    bounds = [2 * RATE, 5 * RATE, 16 * RATE]
    assert batching.budget_sizes(bounds, 32 * RATE) == [16, 6, 2]
    with pytest.raises(ValueError, match="exceeds the budget"):
        batching.check_budget(bounds, 10 * RATE)


def test_the_ranks_take_their_own_columns_of_one_plan():
    from ctc_tui.runner.loader import PlannedBatchSampler

    lengths = np.random.default_rng(3).integers(RATE, 15 * RATE, 200)
    planner, _ = planner_for(lengths, 40.0, 2, (0.9, 1.0, 1.1))
    planner.fix_steps(4)
    samplers = [PlannedBatchSampler(planner, r) for r in range(2)]
    for sampler in samplers:
        sampler.set_epoch(2)
    both = [list(s) for s in samplers]
    assert len(both[0]) == len(both[1]) == len(samplers[0]) == len(planner)
    assert [[a, b] for a, b in zip(*both)] == planner.plan(2)


def test_horizon_covers_max_steps_with_the_epochs_it_reaches():
    lengths = np.random.default_rng(5).integers(RATE, 15 * RATE, 500)
    planner, _ = planner_for(lengths, 40.0, 2, (0.9, 1.0, 1.1))
    epochs = horizon(planner, 1000, 3.0)
    steps = planner.fix_steps(epochs)
    assert steps * epochs >= 1000 and steps * (epochs - 1) < 1000 + steps * 2
    assert horizon(planner, 0, 2.5) == 3


def test_speed_factors_depend_on_seed_epoch_and_clip_only():
    first = perturb.factor_slots(7, 3, 1000, 3)
    assert np.array_equal(first, perturb.factor_slots(7, 3, 1000, 3))  # same seed, same epoch
    assert np.array_equal(first[:400], perturb.factor_slots(7, 3, 400, 3))  # per clip, not per count
    assert not np.array_equal(first, perturb.factor_slots(7, 4, 1000, 3))  # a new epoch, new factors
    assert not np.array_equal(first, perturb.factor_slots(8, 3, 1000, 3))
    assert set(np.bincount(first) / 1000) <= {x / 1000 for x in range(280, 390)}  # about a third each


def test_speed_changes_the_length_by_the_factor_and_keeps_a_tone_s_shape():
    t = np.arange(2 * RATE) / RATE
    tone = np.sin(2 * np.pi * 200 * t).astype(np.float32)
    for factor in (0.9, 1.1):
        out = perturb.speed(tone, factor, RATE)
        assert len(out) == perturb.perturbed_length(len(tone), factor) == round(len(tone) / factor)
        assert out.dtype == np.float32
        # played faster, the tone's pitch rises by the factor: count zero crossings
        crossings = np.count_nonzero(np.diff(np.signbit(out[100:-100])))
        expected = 2 * 200 * factor * (len(out) - 200) / RATE
        assert abs(crossings - expected) <= 3
    assert perturb.speed(tone, 1.0, RATE) is tone


def test_a_perturbed_clip_is_the_same_whatever_the_worker_that_loads_it():
    from ctc_tui.runner.loader import PerturbedClips

    lengths = [RATE, 2 * RATE, 3 * RATE]
    base = [
        {"input_values": np.random.default_rng(i).standard_normal(n).astype(np.float32)}
        for i, n in enumerate(lengths)
    ]

    def normalise(x):
        x -= x.mean()
        x /= np.sqrt(x.var() + 1e-7)

    planner, _ = planner_for(lengths, 40.0, 1, (0.9, 1.0, 1.1), buckets=2)
    clips = PerturbedClips(base, planner, "input_values", perturb.perturber(planner.factors, RATE, normalise))
    (step,) = planner.plan(0)[:1]
    epoch_lengths, _ = planner.epoch_lengths(0)
    for key in step[0]:
        index, slot = planner.decode(key)
        a, b = clips[key]["input_values"], clips[key]["input_values"]
        assert np.array_equal(a, b) and len(a) == epoch_lengths[index]
        if planner.factors[slot] != 1.0:
            assert abs(float(a.mean())) < 1e-4 and abs(float(a.std()) - 1) < 1e-3
