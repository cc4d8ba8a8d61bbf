"""Padding waste of the three ways to pad a training batch, without a model.

Waste = padded audio frames / all frames in the padded batches, over every batch of one epoch
(averaged over 3 seeds), for:
- reference:  every batch padded to max_duration_in_seconds (optimum-habana's HPU behaviour: 1 shape);
- longest:    random batches padded to their longest clip (dynamic: a new shape almost every batch);
- grouped:    the runner's length-grouped batches padded to their longest clip (dynamic);
- buckets:    batches drawn within a bucket, padded to the bucket length (ctc_tui.runner.batching: K shapes).

Two length distributions:
(a) the embedded demo corpus (presets/data/demo-speech/train), durations read with soundfile.info;
(b) a LibriSpeech train-clean-100-like distribution (see ``librispeech_like``), filtered to at most
    max_duration (20 s), as the reference does.

And batches by duration (data.max_batch_seconds) against a fixed count of clips, both within the same
buckets, on the LibriSpeech-like lengths: padding, batches per epoch, and the largest batch's padded
and real audio against the budget (default: batch size x max_duration, the memory the reference's
fixed batches padded to max_duration take). Goal: padding at or below the fixed-count buckets', the
largest batch's padded audio within 5 % of the budget (and never over it).
"At or below" is met within 0.1 point: a bucket's leftover clips move up to the next bucket, and
duration groups, larger for short buckets, leave more of them (measured +0.01 point).

Usage: python bench/padding.py [--batch-size 8] [--world-size 8] [--num-buckets 8] [--budget-seconds S]
Second-to-last line: ``duration_batches padding=X fixed_padding=Y batches=B fixed_batches=F
largest_s=L budget_s=S``; last line: ``padding_waste reference=X bucketed=Y shapes=K``, both for the
LibriSpeech-like distribution.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# after the sys.path insert, so that this checkout's ctc_tui is imported
from ctc_tui.runner.batching import (  # noqa: E402
    DEFAULT_MULTIPLE,
    batch_widths,
    bucket_boundaries,
    bucket_plan,
    budget_sizes,
    length_grouped_batches,
    padding_fraction,
    random_batches,
)

RATE = 16_000
MAX_DURATION = 20.0  # the seed's (and the reference's) max_duration_in_seconds
SEEDS = (0, 1, 2)

# LibriSpeech train-clean-100: 28,539 utterances, 100.6 h (mean 12.69 s), longest 24.5 s (OpenSLR 12;
# the counts also in rwth-i6/i6_experiments common/datasets/librispeech/constants.py).
# Published duration percentiles, from k2-fsa/icefall egs/librispeech/ASR/local/display_manifest_statistics.py
# ("## train-clean-100", lhotse CutSet.describe()). That manifest is speed-perturbed: 85,617 cuts =
# 3 x 28,539, the clips at speed 0.9, 1.0 and 1.1 (its max, 27.2 s = 24.5 s / 0.9). ``librispeech_like``
# undoes that mix.
LIBRISPEECH_CLIPS = 28_539
PERTURBED_LEVELS = [
    0.0,
    0.001,
    0.005,
    0.01,
    0.05,
    0.10,
    0.25,
    0.50,
    0.75,
    0.90,
    0.95,
    0.99,
    0.995,
    0.999,
    1.0,
]
PERTURBED_SECONDS = [1.3, 1.9, 2.2, 2.5, 4.2, 6.4, 11.4, 13.8, 15.3, 16.7, 17.3, 18.1, 18.4, 18.8, 27.2]
SPEEDS = (0.9, 1.0, 1.1)


def _interp_weights(points: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Rows w with w @ f == np.interp(points, grid, f) for any f on ``grid``."""
    rows = np.zeros((len(points), len(grid)))
    at = np.clip(np.searchsorted(grid, points), 1, len(grid) - 1)
    frac = np.clip((points - grid[at - 1]) / (grid[at] - grid[at - 1]), 0.0, 1.0)
    rows[np.arange(len(points)), at - 1] = 1.0 - frac
    rows[np.arange(len(points)), at] += frac
    return rows


def _mixture_quantiles(levels: np.ndarray, seconds: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Quantiles ``at`` of the 3-speed mix of the distribution with quantile table (levels, seconds):
    a clip of d seconds played at speed s lasts d / s."""
    grid = np.linspace(seconds[0] / max(SPEEDS), seconds[-1] / min(SPEEDS), 40_001)
    cdf = np.mean([np.interp(grid * s, seconds, levels) for s in SPEEDS], axis=0)
    return np.interp(at, cdf, grid)


def unperturbed_quantiles(step: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """A quantile table (levels, seconds) of train-clean-100 itself, without speed perturbation.

    The mix's CDF at t is the mean over speeds s of F(s * t): linear in the unperturbed CDF F. So F on a
    0.05 s grid from the shortest clip (1.3 s x 1.1) to the longest (27.2 s x 0.9) is the least-squares
    solution of "the mix has the published percentiles", with a small curvature penalty, clipped to a
    monotone CDF. That fit ends near 16.8 s; the published tail (0.1% of clips up to 24.5 s) is put back
    as a straight line from the 99.9% point to the maximum.
    """
    levels, target = np.asarray(PERTURBED_LEVELS), np.asarray(PERTURBED_SECONDS)
    grid = np.arange(target[0] * max(SPEEDS), target[-1] * min(SPEEDS) + step, step)
    mix = np.mean([_interp_weights(target[1:-1] * s, grid) for s in SPEEDS], axis=0)
    ends = np.zeros((2, len(grid)))
    ends[0, 0] = ends[1, -1] = 1.0
    curvature = np.diff(np.eye(len(grid)), 2, axis=0)
    system = np.vstack([100 * mix, 1000 * ends, 10 * curvature])
    rhs = np.concatenate([100 * levels[1:-1], [0.0, 1000.0], np.zeros(len(grid) - 2)])
    cdf = np.maximum.accumulate(np.clip(np.linalg.lstsq(system, rhs, rcond=None)[0], 0.0, 1.0))
    cdf, first = np.unique(cdf, return_index=True)
    body = cdf < 0.999
    edge = float(np.interp(0.999, cdf, grid[first]))
    return (
        np.concatenate([cdf[body], [0.999, 1.0]]),
        np.concatenate([grid[first][body], [edge, target[-1] * min(SPEEDS)]]),
    )


def librispeech_like(seed: int = 0) -> tuple[list[int], dict[str, float]]:
    """28,539 clip lengths (samples at 16 kHz) drawn from ``unperturbed_quantiles`` (inverse CDF, fixed
    seed), then filtered to at most MAX_DURATION seconds."""
    levels, knots = unperturbed_quantiles()
    seconds = np.interp(np.random.default_rng(seed).random(LIBRISPEECH_CLIPS), levels, knots)
    inner = np.asarray(PERTURBED_LEVELS)[1:-1]
    fit = _mixture_quantiles(levels, knots, inner)
    info = {
        "mean_s": float(seconds.mean()),
        "max_s": float(seconds.max()),
        "hours": float(seconds.sum() / 3600),
        "dropped": int((seconds > MAX_DURATION).sum()),
        "fit_error_s": float(np.abs(fit - np.asarray(PERTURBED_SECONDS)[1:-1]).max()),
    }
    kept = seconds[seconds <= MAX_DURATION]
    return np.rint(kept * RATE).astype(int).tolist(), info


def demo_lengths() -> list[int]:
    import soundfile as sf

    folder = REPO / "presets" / "data" / "demo-speech" / "train"
    infos = [sf.info(str(p)) for p in sorted(folder.glob("*.flac"))]
    return [round(i.frames * RATE / i.samplerate) for i in infos]  # the runner resamples to 16 kHz


def _mean_over_seeds(measure: Callable[[int], tuple[float, int]]) -> tuple[float, int]:
    results = [measure(seed) for seed in SEEDS]
    return statistics.mean(r[0] for r in results), max(r[1] for r in results)


def measure_all(
    lengths: list[int], batch_size: int, world: int, num_buckets: int
) -> dict[str, tuple[float, int]]:
    """Waste and number of distinct batch shapes (audio lengths) for each way of padding."""
    max_len = int(MAX_DURATION * RATE)
    group = batch_size * world

    def dynamic(batches: list[list[int]], **pad) -> tuple[float, int]:
        return padding_fraction(lengths, batches, **pad), len(set(batch_widths(lengths, batches, **pad)))

    def split(global_batches: list[list[int]]) -> list[list[int]]:  # one global batch -> one per card
        return [
            b[r * batch_size : (r + 1) * batch_size]
            for b in global_batches
            for r in range(world)
            if b[r * batch_size : (r + 1) * batch_size]
        ]

    boundaries = bucket_boundaries(lengths, num_buckets, DEFAULT_MULTIPLE)

    def bucketed(seed: int) -> tuple[float, int]:
        batches = [
            batch for step in bucket_plan(lengths, boundaries, batch_size, seed, world) for batch in step
        ]
        return dynamic(batches, boundaries=boundaries)

    return {
        "reference": _mean_over_seeds(
            lambda s: dynamic(random_batches(len(lengths), batch_size, s), pad_to=max_len)
        ),
        "longest": _mean_over_seeds(lambda s: dynamic(random_batches(len(lengths), batch_size, s))),
        "grouped": _mean_over_seeds(lambda s: dynamic(split(length_grouped_batches(lengths, group, s)))),
        "buckets": _mean_over_seeds(bucketed),
    }


def print_table(name: str, lengths: list[int], results: dict[str, tuple[float, int]]) -> None:
    seconds = np.asarray(lengths) / RATE
    print(
        f"\n{name}: {len(lengths)} clips, {seconds.min():.2f}-{seconds.max():.2f} s, "
        f"mean {seconds.mean():.2f} s"
    )
    print(f"  {'padding':<38} {'waste':>6} {'shapes':>7}")
    labels = {
        "reference": f"reference: pad to max_duration {MAX_DURATION:g} s",
        "longest": "longest clip of a random batch",
        "grouped": "longest clip, length-grouped batches",
        "buckets": "buckets (runner data.padding=buckets)",
    }
    for key, (waste, shapes) in results.items():
        print(f"  {labels[key]:<38} {waste:>6.3f} {shapes:>7}")


def by_duration(
    lengths: list[int], batch_size: int, world: int, num_buckets: int, budget_s: float
) -> dict[str, dict[str, float]]:
    """Fixed-count and duration batches within the same buckets (seed-averaged padding; batches per
    epoch, i.e. per card, and the largest batch's padded and real seconds, the worst over the seeds)."""
    bounds = bucket_boundaries(lengths, num_buckets, DEFAULT_MULTIPLE)
    arr = np.asarray(lengths)
    out = {}
    for name, size in (("fixed", batch_size), ("duration", budget_sizes(bounds, int(budget_s * RATE)))):
        runs = []
        for seed in SEEDS:
            batches = [b for step in bucket_plan(lengths, bounds, size, seed, world) for b in step]
            widths = batch_widths(lengths, batches, boundaries=bounds)
            padded = [w * len(b) for w, b in zip(widths, batches)]
            largest = int(np.argmax(padded))
            runs.append(
                {
                    "padding": padding_fraction(lengths, batches, boundaries=bounds),
                    "batches": len(batches) / world,
                    "largest_s": padded[largest] / RATE,
                    "largest_real_s": float(arr[batches[largest]].sum()) / RATE,
                    "mean_s": float(np.mean(padded)) / RATE,
                }
            )
        out[name] = {k: statistics.mean(r[k] for r in runs) for k in runs[0]}
        out[name]["largest_s"] = max(r["largest_s"] for r in runs)
    return out


def print_duration(results: dict[str, dict[str, float]], batch_size: int, budget_s: float) -> None:
    print(
        f"\n  batches by duration, budget {budget_s:g} s of padded audio per card (LibriSpeech-like; "
        f"both within the same buckets):"
    )
    print(f"  {'batches':<34} {'waste':>6} {'per epoch':>10} {'largest':>9} {'its audio':>10} {'mean':>7}")
    for key, label in (("fixed", f"fixed count: {batch_size} clips"), ("duration", "duration budget")):
        r = results[key]
        print(
            f"  {label:<34} {r['padding']:>6.4f} {r['batches']:>10.0f} {r['largest_s']:>8.1f}s "
            f"{r['largest_real_s']:>9.1f}s {r['mean_s']:>6.1f}s"
        )
    d = results["duration"]
    met = (
        d["padding"] <= results["fixed"]["padding"] + 0.001 and 0.95 * budget_s <= d["largest_s"] <= budget_s
    )
    print(
        f"  goal: padding at the fixed count's (within 0.1 point: a bucket's leftover clips move up a "
        f"bucket, and duration groups are larger), largest batch within 5 % of the budget, never over: "
        f"{'met' if met else 'NOT met'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8, help="clips per card per step")
    parser.add_argument("--world-size", type=int, default=8, help="cards")
    parser.add_argument("--num-buckets", type=int, default=8)
    parser.add_argument(
        "--budget-seconds", type=float, help="duration budget per card (default: batch size x max_duration)"
    )
    args = parser.parse_args()
    print(
        f"batch size {args.batch_size} per card, {args.world_size} cards, {args.num_buckets} buckets "
        f"(lengths rounded up to {DEFAULT_MULTIPLE} samples), waste averaged over seeds {list(SEEDS)}"
    )

    demo = demo_lengths()
    print_table(
        "(a) demo corpus, train split",
        demo,
        measure_all(demo, args.batch_size, args.world_size, args.num_buckets),
    )

    libri, info = librispeech_like()
    print(
        f"\nLibriSpeech train-clean-100-like source: {LIBRISPEECH_CLIPS} clips drawn, "
        f"{info['hours']:.1f} h, mean "
        f"{info['mean_s']:.2f} s (published 12.69 s), max {info['max_s']:.1f} s (published 24.5 s); "
        f"its 3-speed mix within {info['fit_error_s']:.2f} s; "
        f"{info['dropped']} clips over {MAX_DURATION:g} s dropped"
    )
    results = measure_all(libri, args.batch_size, args.world_size, args.num_buckets)
    print_table("(b) LibriSpeech-like, clips <= 20 s (as the reference filters)", libri, results)
    sweep = []
    for k in (1, 2, 4, 8, 16):
        bounds = bucket_boundaries(libri, k, DEFAULT_MULTIPLE)
        batches = [
            b for step in bucket_plan(libri, bounds, args.batch_size, 0, args.world_size) for b in step
        ]
        sweep.append(f"K={k}: {padding_fraction(libri, batches, boundaries=bounds):.3f}")
    print("\n  buckets vs K (LibriSpeech-like, seed 0):", ", ".join(sweep))
    bounds = bucket_boundaries(libri, args.num_buckets, DEFAULT_MULTIPLE)
    print("  bucket lengths (s):", ", ".join(f"{b / RATE:.2f}" for b in bounds))
    budget_s = args.budget_seconds or args.batch_size * MAX_DURATION
    duration = by_duration(libri, args.batch_size, args.world_size, args.num_buckets, budget_s)
    print_duration(duration, args.batch_size, budget_s)
    reference, (bucketed, shapes) = results["reference"][0], results["buckets"]
    d, f = duration["duration"], duration["fixed"]
    print(
        f"duration_batches padding={d['padding']:.4f} fixed_padding={f['padding']:.4f} "
        f"batches={d['batches']:.0f} fixed_batches={f['batches']:.0f} largest_s={d['largest_s']:.2f} "
        f"budget_s={budget_s:g}"
    )
    print(f"padding_waste reference={reference:.3f} bucketed={bucketed:.3f} shapes={shapes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
