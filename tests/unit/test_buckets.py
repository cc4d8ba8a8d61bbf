"""Static-shape buckets: the boundaries, the batch plan across ranks, the collator's shapes, the preset
keys."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from ctc_tui.core.preset import PresetError, load_preset, validate_data
from ctc_tui.runner import batching
from tests.conftest import REPO

SEED_PRESET = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"


def skewed(n: int = 3000, seed: int = 0) -> list[int]:
    """Clip lengths (samples at 16 kHz) bunched near 14 s with a long short tail, capped at 20 s."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(
        np.concatenate([rng.normal(14.0, 2.0, n * 3 // 4), rng.uniform(1.0, 12.0, n - n * 3 // 4)]), 1.0, 20.0
    )
    return [int(s * 16000) for s in seconds]


def padded_cost(lengths: list[int], boundaries: list[int]) -> int:
    return sum(boundaries[batching.bucket_index(n, boundaries)] for n in lengths)


# -- boundaries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 8, 64])
def test_boundaries_cover_the_longest_clip_with_at_most_k_multiples(k):
    lengths = skewed()
    bounds = batching.bucket_boundaries(lengths, k, multiple=1600)
    assert 1 <= len(bounds) <= k
    assert bounds == sorted(set(bounds))
    assert all(b % 1600 == 0 for b in bounds)
    assert bounds[-1] >= max(lengths) > bounds[-1] - 1600
    assert all(batching.bucket_length(n, bounds) is not None for n in lengths)


def test_boundaries_are_optimal_on_small_cases():
    """The programme's answer against every choice of boundaries (brute force)."""
    for trial in range(150):
        rng = np.random.default_rng(trial)
        lengths = rng.integers(1, 30, int(rng.integers(1, 25))).tolist()
        k = int(rng.integers(1, 5))
        bounds = batching.bucket_boundaries(lengths, k, multiple=1)
        values = sorted(set(lengths))
        best = min(
            padded_cost(lengths, [*combo, values[-1]])
            for r in range(k)
            for combo in itertools.combinations(values[:-1], r)
        )
        assert padded_cost(lengths, bounds) == best, (lengths, k, bounds)


def test_fewer_distinct_lengths_than_buckets_gives_one_bucket_each():
    assert batching.bucket_boundaries([320, 640, 640, 300], 8, multiple=320) == [320, 640]


def test_coarse_grid_when_the_lengths_span_too_many_multiples():
    lengths = list(range(1, 100_000, 7))
    bounds = batching.bucket_boundaries(lengths, 4, multiple=10, max_candidates=100)
    assert len(bounds) == 4 and bounds[-1] >= max(lengths)
    assert all(b % 10 == 0 for b in bounds)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        batching.bucket_boundaries([], 4)
    with pytest.raises(ValueError):
        batching.bucket_boundaries([5], 0)


def test_bucket_lookup_and_cover():
    bounds = [3200, 6400, 9600]
    assert [batching.bucket_length(n, bounds) for n in (1, 3200, 3201, 9600, 9601)] == [
        3200,
        3200,
        6400,
        9600,
        None,
    ]
    assert batching.bucket_index(9601, bounds) == 3
    assert batching.cover(bounds, 9000, 320) == bounds
    assert batching.cover(bounds, 9700, 320) == [3200, 6400, 9920]


# -- waste --------------------------------------------------------------------------------------------


def test_padding_fraction_by_hand():
    lengths = [10, 20, 30, 40]
    batches = [[0, 1], [2, 3]]
    assert batching.padding_fraction(lengths, batches) == pytest.approx(1 - 100 / (2 * 20 + 2 * 40))
    assert batching.padding_fraction(lengths, batches, pad_to=50) == pytest.approx(1 - 100 / 200)
    assert batching.padding_fraction(lengths, batches, boundaries=[25, 45]) == pytest.approx(
        1 - 100 / (2 * 25 + 2 * 45)
    )
    assert batching.batch_widths(lengths, batches, boundaries=[25, 45]) == [25, 45]


def test_buckets_waste_far_less_than_padding_to_max_duration():
    lengths = skewed()
    max_len = 20 * 16000
    batches = [
        b
        for step in batching.bucket_plan(lengths, batching.bucket_boundaries(lengths, 8), 8, 0, 2)
        for b in step
    ]
    reference = batching.padding_fraction(
        lengths, batching.random_batches(len(lengths), 8, 0), pad_to=max_len
    )
    wastes = []
    for k in (1, 2, 4, 8):
        bounds = batching.bucket_boundaries(lengths, k)
        plan = [b for step in batching.bucket_plan(lengths, bounds, 8, 0, 2) for b in step]
        wastes.append(batching.padding_fraction(lengths, plan, boundaries=bounds))
    assert wastes == sorted(wastes, reverse=True)
    assert wastes[-1] < 0.10 < reference
    assert (
        len(set(batching.batch_widths(lengths, batches, boundaries=batching.bucket_boundaries(lengths, 8))))
        <= 8
    )


# -- the plan and the sampler -------------------------------------------------------------------------


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_every_clip_exactly_once_per_epoch_with_equal_batches_per_rank(world):
    batch = 4
    lengths = skewed(n=batch * world * 25, seed=world)
    bounds = batching.bucket_boundaries(lengths, 5)
    samplers = [
        batching.BucketBatchSampler(lengths, bounds, batch, world, rank, seed=7) for rank in range(world)
    ]
    for epoch in (0, 1):
        per_rank = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            per_rank.append(list(sampler))
        assert len({len(batches) for batches in per_rank}) == 1
        assert all(len(b) == batch for batches in per_rank for b in batches)
        seen = Counter(i for batches in per_rank for b in batches for i in b)
        assert sorted(seen) == list(range(len(lengths))) and set(seen.values()) == {1}
        assert len(samplers[0]) == len(per_rank[0])


@pytest.mark.parametrize("world,batch,n", [(2, 4, 101), (3, 5, 7), (1, 8, 3), (4, 2, 1)])
def test_a_short_last_group_is_topped_up_or_dropped(world, batch, n):
    lengths = skewed(n=max(n, 4))[:n]
    bounds = batching.bucket_boundaries(lengths, 4)
    group = batch * world
    plan = batching.bucket_plan(lengths, bounds, batch, 0, world)
    assert len(plan) == batching.plan_steps(n, batch, world) == -(-n // group)
    assert all(len(step) == world and all(len(b) == batch for b in step) for step in plan)
    seen = Counter(i for step in plan for b in step for i in b)
    assert set(seen) == set(range(n))  # everything once ...
    assert sum(seen.values()) - n == (-n) % group  # ... and only the top-up repeats
    dropped = batching.bucket_plan(lengths, bounds, batch, 0, world, drop_last=True)
    assert len(dropped) == batching.plan_steps(n, batch, world, drop_last=True) == n // group
    flat = [i for step in dropped for b in step for i in b]
    assert len(flat) == len(set(flat)) == n // group * group


def test_each_step_is_one_bucket_and_the_longest_comes_first():
    lengths = skewed()
    bounds = batching.bucket_boundaries(lengths, 6)
    plan = batching.bucket_plan(lengths, bounds, 8, 3, 2)
    # Clips left over in a bucket move up one, so a step's clips all fit its bucket; the widths used are
    # bucket lengths only.
    for step in plan:
        widths = {batching.bucket_length(max(lengths[i] for i in b), bounds) for b in step}
        assert widths <= set(bounds)
    first = max(lengths[i] for b in plan[0] for i in b)
    assert batching.bucket_length(first, bounds) == bounds[-1]


def test_plan_is_deterministic_by_seed_and_epoch():
    lengths = skewed()
    bounds = batching.bucket_boundaries(lengths, 8)
    a = batching.BucketBatchSampler(lengths, bounds, 8, 2, 1, seed=5)
    b = batching.BucketBatchSampler(lengths, bounds, 8, 2, 1, seed=5)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)
    assert list(batching.BucketBatchSampler(lengths, bounds, 8, 2, 1, seed=6)) != list(b)


def test_lengths_beyond_the_last_bucket_are_refused():
    with pytest.raises(ValueError, match="exceed the largest bucket"):
        batching.bucket_plan([100, 5000], [3200], 2, 0)
    with pytest.raises(ValueError):
        batching.BucketBatchSampler([1, 2], [3200], 1, num_replicas=2, rank=2)


def test_trainer_stream_reaches_each_rank_as_its_plan_column():
    """The Trainer cuts BucketSampler's stream into per-card batches and accelerate deals them to the
    ranks in turn: each rank must get exactly its own batches of the plan."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler

    from ctc_tui.runner.collate import BucketSampler

    lengths = skewed(n=1001)
    bounds = batching.bucket_boundaries(lengths, 8)
    world, batch = 3, 4
    stream = BucketSampler(lengths, bounds, batch, world, seed=11)
    stream.set_epoch(2)
    assert len(stream) == len(list(stream))
    for rank in range(world):
        got = list(
            BatchSamplerShard(
                BatchSampler(stream, batch, drop_last=False), num_processes=world, process_index=rank
            )
        )
        mine = batching.BucketBatchSampler(lengths, bounds, batch, world, rank, seed=11)
        mine.set_epoch(2)
        assert got == list(mine)


# -- the collator -------------------------------------------------------------------------------------


def test_collator_pads_only_to_bucket_lengths():
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    from ctc_tui.runner.collate import CtcCollator

    rng = np.random.default_rng(0)
    lengths = rng.integers(800, 16000, 200).tolist()
    bounds = batching.bucket_boundaries(lengths, 4)
    fe = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    collate = CtcCollator(fe, "input_values", pad_to_lengths=bounds, label_multiple=500)
    data = [
        {"input_values": rng.standard_normal(n).astype(np.float32), "labels": list(range(1, 1 + n // 400))}
        for n in lengths
    ]
    widths = set()
    for step in batching.bucket_plan(lengths, bounds, 8, 0, 2):
        for b in step:
            out = collate([data[i] for i in b])
            widths.add(out["input_values"].shape[1])
            assert out["labels"].shape == (8, 500)
            assert torch.equal(out["attention_mask"].sum(-1), torch.tensor([lengths[i] for i in b]))
    assert widths <= set(bounds) and len(widths) > 1


@pytest.mark.parametrize("mask", [True, False])
@pytest.mark.parametrize("buckets", [False, True])
def test_collator_pads_audio_as_the_feature_extractor_does(mask, buckets):
    """The collator's own numpy padding gives exactly the tensors of ``feature_extractor.pad`` (what it
    used before): the same keys, dtypes (the mask int64) and values, to the longest clip or to a bucket."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    from ctc_tui.runner.collate import CtcCollator

    rng = np.random.default_rng(1)
    fe = Wav2Vec2FeatureExtractor(return_attention_mask=mask, padding_value=0.25)
    lengths = rng.integers(400, 9000, 64).tolist()
    bounds = batching.bucket_boundaries(lengths, 3) if buckets else None
    collate = CtcCollator(fe, "input_values", pad_to_lengths=bounds)
    clips = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    for start in range(0, 64, 16):
        chunk = clips[start : start + 16]
        out = collate([{"input_values": c, "labels": [1, 2, 3][: 1 + i % 3]} for i, c in enumerate(chunk)])
        width = max(len(c) for c in chunk)
        width = batching.bucket_length(width, bounds) if bounds else width
        ref = fe.pad(
            [{"input_values": c} for c in chunk], padding="max_length", max_length=width, return_tensors="pt"
        )
        assert sorted(out) == sorted([*ref, "labels"])
        assert out["input_values"].dtype == ref["input_values"].dtype == torch.float32
        assert torch.equal(out["input_values"], ref["input_values"])
        if mask:
            assert out["attention_mask"].dtype == torch.long
            assert torch.equal(out["attention_mask"], ref["attention_mask"].to(torch.long))


def test_collator_hands_other_inputs_to_the_feature_extractor():
    """float64 clips (not what preprocessing stores) still pad, through ``feature_extractor.pad``."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    from ctc_tui.runner.collate import CtcCollator

    fe = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    out = CtcCollator(fe)([{"input_values": np.ones(n), "labels": [1]} for n in (3, 5)])
    assert out["input_values"].dtype == torch.float32 and out["input_values"].shape == (2, 5)
    assert out["attention_mask"].dtype == torch.long and out["attention_mask"].sum().item() == 8


# -- preset keys and how the runner resolves them -----------------------------------------------------


def test_padding_key_validates_with_a_hint(tmp_path):
    base = {"data": {"dataset_name": "librispeech_asr"}}
    assert validate_data(base, "p").data.padding == "auto"
    assert validate_data(base, "p").data.num_buckets == 8
    with pytest.raises(PresetError) as err:
        validate_data(base, "p", overrides=["data.padding=bucket"])
    assert "did you mean 'buckets'" in str(err.value) and "data.padding" in str(err.value)
    with pytest.raises(PresetError) as err:
        validate_data(base, "p", overrides=["data.padding=max_duration"])
    assert "did you mean 'max_length'" in str(err.value)
    for bad in ("0", "65", "many"):
        with pytest.raises(PresetError, match="data.num_buckets"):
            validate_data(base, "p", overrides=[f"data.num_buckets={bad}"])
    path = tmp_path / "p.yaml"
    path.write_text("data:\n  dataset_name: librispeech_asr\n  padding: longst\n")
    with pytest.raises(PresetError) as err:
        load_preset(path)
    assert "line 3" in str(err.value) and "did you mean 'longest'" in str(err.value)
    # the key it replaces says where it went
    path.write_text("data:\n  dataset_name: librispeech_asr\ngaudi:\n  static_shapes: off\n")
    with pytest.raises(PresetError) as err:
        load_preset(path)
    assert "line 4" in str(err.value) and "it is now data.padding" in str(err.value)


def test_runner_resolves_padding():
    from ctc_tui.runner.collate import padding_mode, static_shape_padding
    from ctc_tui.runner.errors import RunError

    seed = load_preset(SEED_PRESET)
    assert seed.data.padding == "auto"
    # auto: buckets on HPU, dynamic elsewhere
    assert padding_mode(seed, "hpu") == "buckets" and padding_mode(seed, "cpu") == "longest"
    lengths = skewed()
    out = static_shape_padding(seed, "hpu", 16000, lengths)
    assert out["pad_to_lengths"] == batching.bucket_boundaries(lengths, 8) and out["label_multiple"] == 500
    reference = load_preset(SEED_PRESET, ["data.padding=max_length"])
    assert static_shape_padding(reference, "hpu", 16000) == {
        "pad_to_lengths": [320000],
        "label_multiple": 500,
    }
    # an explicit data.padding wins on every device
    explicit = load_preset(SEED_PRESET, ["data.padding=buckets", "data.num_buckets=3"])
    assert len(static_shape_padding(explicit, "cpu", 16000, lengths)["pad_to_lengths"]) == 3
    assert static_shape_padding(load_preset(SEED_PRESET, ["data.padding=longest"]), "hpu", 16000) == {}
    # the last bucket is raised to hold the longest eval clip: evaluation adds no shape
    covered = static_shape_padding(explicit, "cpu", 16000, lengths, longest_eval=330_000)["pad_to_lengths"]
    assert covered[-1] == 330_240 and len(covered) == 3
    with pytest.raises(RunError):
        static_shape_padding(explicit, "cpu", 16000, [])
