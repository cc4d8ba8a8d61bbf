"""The runner's steps, each alone and cheaply (no model is trained here): the seconds-to-samples helper,
the device choice, reading the splits, the cache settings, the Trainer's arguments and batch shapes, the
evaluate / save / stop steps, and how a rank's preset is read and its ending becomes an exit code."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ctc_tui.core.preset import load_preset
from ctc_tui.core.sources import DataError
from ctc_tui.runner import load, train
from ctc_tui.runner.audio import seconds_to_samples
from ctc_tui.runner.collate import describe_buckets, static_shape_padding
from ctc_tui.runner.errors import RunError
from ctc_tui.runner.splits import Splits, cache_settings, read_splits, summary

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "presets" / "demo-cpu.yaml"


def demo(*overrides: str):
    return load_preset(DEMO, list(overrides))


class Events:
    """A reporter that keeps what it was told."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []
        self.remote_stop = SimpleNamespace(is_set=lambda: False)

    def emit(self, kind: str, **fields) -> None:
        self.events.append((kind, fields))

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]


# -- seconds to samples -------------------------------------------------------------------------------


def test_seconds_to_samples_rounds_down():
    assert seconds_to_samples(20.0, 16000) == 320000
    assert seconds_to_samples(0.5, 22050) == 11025
    assert seconds_to_samples(1.00009, 16000) == 16001  # 16001.44 samples: the last partial one is not
    assert seconds_to_samples(0, 16000) == 0


def test_every_duration_limit_uses_the_helper():
    """The fixed padding length, the padding figure it is compared with and the preprocessing bounds
    all come from seconds_to_samples (one conversion, so they cannot disagree)."""
    preset = demo("data.padding=max_length", "data.max_duration_in_seconds=1.00009")
    assert static_shape_padding(preset, "cpu", 16000)["pad_to_lengths"] == [16001]
    line = describe_buckets([8000, 16001], [8000, 16001], preset, 16000)
    assert line.endswith("(padding to max_duration: 25.0%)")  # (16001 - 8000) / (2 * 16001)
    for module in ("data.py", "collate.py"):
        text = (REPO / "runner" / module).read_text()
        assert "_in_seconds *" not in text and "seconds_to_samples(" in text


# -- load: the device ---------------------------------------------------------------------------------


def test_backend_name_follows_the_preset_then_the_machine(monkeypatch):
    import torch

    assert load.backend_name(demo("gaudi.use_habana=true", "training.use_cpu=false")) == "hpu"
    assert load.backend_name(demo("training.use_cpu=true")) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load.backend_name(demo("training.use_cpu=false")) == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert load.backend_name(demo("training.use_cpu=false")) == "cpu"


def test_a_trained_model_runs_where_it_trained_or_on_the_cpu_with_a_note(monkeypatch):
    """Transcription and evaluation take the training's device; a Gaudi or GPU run used on a machine
    without that device (a laptop) runs on the CPU and says so in one line, rather than failing."""
    import torch

    gaudi = demo("gaudi.use_habana=true", "training.use_cpu=false")
    monkeypatch.setattr(load, "hpu_usable", lambda: True)
    assert load.inference_device(gaudi) == ("hpu", None)
    monkeypatch.setattr(load, "hpu_usable", lambda: False)
    device, note = load.inference_device(gaudi)
    assert device == "cpu" and "Gaudi (hpu)" in note and "running on the CPU" in note

    gpu = demo("training.use_cpu=false")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load.inference_device(gpu) == ("cuda", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device, note = load.inference_device(gpu)
    assert device == "cpu" and "asks for a GPU" in note and "running on the CPU" in note

    assert load.inference_device(demo("training.use_cpu=true")) == ("cpu", None)  # asked for: no note
    assert load.inference_device(None) == ("cpu", None)  # a bare model folder, no preset


def test_hpu_usable_is_false_without_habanas_stack(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "habana_frameworks", None)  # what importing it does without it
    assert load.hpu_usable() is False


def test_vocabulary_dir_is_the_run_dir_only_on_rank_0(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert load.vocabulary_dir(tmp_path / "run", 0) == tmp_path / "run"
    other = load.vocabulary_dir(tmp_path / "run", 3)
    assert other.parent == tmp_path / "tmp" and other.name.startswith("ctc-tui-vocab-3-") and other.is_dir()


def test_unseen_characters_names_what_the_vocabulary_lacks():
    splits = Splits(str.lower, train=None, eval=SimpleNamespace(text=["Hello", "WORLD!"]))
    vocab = {c: i for i, c in enumerate("helowr")}
    assert load.unseen_characters(splits, vocab) == "!d"
    assert load.unseen_characters(splits, None) == ""  # the preset's own tokenizer: nothing to say
    assert load.unseen_characters(Splits(str.lower, None, None), vocab) == ""


def test_has_trained_model_needs_config_and_weights(tmp_path):
    assert not load.has_trained_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert not load.has_trained_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert load.has_trained_model(tmp_path)


# -- data ---------------------------------------------------------------------------------------------


def test_read_splits_reads_what_the_preset_trains_and_evaluates():
    splits = read_splits(demo("data.max_train_samples=5"))
    assert len(splits.train.text) == 5 and splits.eval is not None
    assert [name for name, _ in splits.named()] == ["train", "eval"]
    assert splits.vocabulary_text() == [splits.normalise(t) for t in splits.train.text]
    only_eval = read_splits(demo("training.do_train=false"))
    assert only_eval.train is None and [name for name, _ in only_eval.named()] == ["eval"]
    assert only_eval.vocabulary_text() == [only_eval.normalise(t) for t in only_eval.eval.text]


class _FE:
    def to_dict(self):
        return {"sampling_rate": 16000, "feature_size": 1}


def test_cache_settings_are_pinned():
    """Part of every preprocessing cache key: a change here would silently re-preprocess every corpus."""
    preset = demo()
    settings = cache_settings(preset, {"a": 1}, _FE())
    assert settings == (  # the value the code before the runner's split into steps gave
        '{"chars": [",", "?", ".", "!", ";", ":", "\\""], "fe": {"feature_size": 1, "sampling_rate": 16000}, '
        '"lower": true, "max": 20.0, "min": 0.0, "vocab": {"a": 1}}'
    )
    assert json.loads(cache_settings(preset, None, _FE()))["vocab"] == "None"


def test_summary_names_the_dropped_and_resampled_clips():
    prepared = SimpleNamespace(
        dataset=[0] * 7,
        dropped_long=2,
        dropped_short=0,
        dropped_broken=1,
        dropped_empty=0,
        resampled_from=[8000, 44100],
        from_cache=True,
    )
    assert summary("train", prepared) == (
        "train: 7 clips (cached), dropped 2 too long, 1 undecodable, resampled from 8000/44100 Hz"
    )


# -- the trainer's arguments and batch shapes ---------------------------------------------------------


def test_make_arguments_on_cpu_has_no_gaudi_config(tmp_path):
    from ctc_tui.runner.trainer import make_arguments

    arguments = make_arguments(demo("training.max_steps=3"), tmp_path, "cpu", 1)
    assert arguments.backend == "cpu" and arguments.gaudi_config is None
    assert type(arguments.training).__name__ == "TrainingArguments"
    assert (arguments.training.output_dir, arguments.training.max_steps) == (str(tmp_path), 3)
    assert arguments.training.use_cpu and arguments.training.disable_tqdm


def test_batch_shapes_round_buckets_to_the_model_stride():
    from ctc_tui.runner.trainer import batch_shapes

    built = SimpleNamespace(
        model=SimpleNamespace(config=SimpleNamespace(conv_stride=(5, 2, 2))),
        feature_extractor=SimpleNamespace(sampling_rate=16000),
    )
    lengths = [1000 + 37 * i for i in range(200)]
    shapes = batch_shapes(demo("data.padding=buckets", "data.num_buckets=4"), "cpu", built, lengths, [9999])
    assert shapes.bucketed and shapes.padding["label_multiple"] == 500
    assert all(n % 20 == 0 for n in shapes.padding["pad_to_lengths"])
    assert shapes.padding["pad_to_lengths"][-1] >= 9999  # evaluation adds no shape
    longest = batch_shapes(demo("data.padding=longest"), "cpu", built, lengths, [])
    assert (longest.padding, longest.bucketed) == ({}, False)


# -- evaluate, save, stop -----------------------------------------------------------------------------


class FakeTrainer:
    def __init__(self):
        self.calls: list[tuple] = []
        self.state = SimpleNamespace(global_step=12)

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, *args))
            return {"eval_loss": 1.5} if name == "evaluate" else None

        return record


def test_evaluate_logs_and_saves_the_metrics():
    from ctc_tui.runner.evaluate import evaluate

    trainer = FakeTrainer()
    metrics = evaluate(trainer, [0, 0, 0])
    assert metrics == {"eval_loss": 1.5, "eval_samples": 3}
    assert [c[0] for c in trainer.calls] == ["evaluate", "log_metrics", "save_metrics"]
    assert trainer.calls[-1] == ("save_metrics", "eval", metrics)


def test_scores_leave_out_what_was_not_asked():
    from ctc_tui.runner.evaluate import scores

    pairs = [("the cat", "the cat"), ("", "a dog")]
    assert scores(pairs, ["wer"]) == {"wer": pytest.approx(2 / 4), "blank_fraction": 0.5}
    assert set(scores(pairs, ["cer"])) == {"cer", "blank_fraction"}


def test_save_writes_model_metrics_and_state_in_order():
    trainer = FakeTrainer()
    train.save(trainer, SimpleNamespace(metrics={"train_loss": 0.5}), 40)
    assert [c[0] for c in trainer.calls] == [
        "ctc_set_state",
        "save_model",
        "log_metrics",
        "save_metrics",
        "save_state",
    ]
    assert trainer.calls[3] == ("save_metrics", "train", {"train_loss": 0.5, "train_samples": 40})


def test_train_says_where_it_resumes_from():
    reporter, trainer = Events(), FakeTrainer()
    train.train(train.Setup(trainer, [0], None, "/runs/x/checkpoint-40"), reporter)
    assert reporter.events == [("log", {"level": "info", "message": "resuming from checkpoint-40"})]
    assert trainer.calls == [("train",)]


def test_report_stopped_names_the_checkpoint_and_the_resume_command(tmp_path):
    reporter = Events()
    train.report_stopped(FakeTrainer(), tmp_path, reporter)
    message = reporter.events[0][1]["message"]
    assert (
        message == f"stopped at step 12; no complete checkpoint; resume with ctc-tui run --resume {tmp_path}"
    )
    assert reporter.events[-1] == ("state", {"state": "stopped"})


# -- the rank's main: reading the preset, ending with an exit code ------------------------------------


def test_read_preset_fills_placeholders_on_one_rank_only():
    from ctc_tui.runner.__main__ import read_preset

    preset, source, resume = read_preset([str(DEMO), "training.max_steps=2"], 1)
    assert (source, resume, preset.training.max_steps) == (str(DEMO), False, 2)
    assert "{" not in preset.training.output_dir and "demo-cpu-" in preset.training.output_dir
    with pytest.raises(RunError, match="placeholders that each rank would fill differently"):
        read_preset([str(DEMO)], 2)
    _, _, resume = read_preset([str(DEMO), "--resume"], 1)
    assert resume


@pytest.mark.parametrize(
    ("raised", "code", "last"),
    [
        (DataError("no clips"), 2, ("state", {"state": "failed"})),
        (RunError("output_dir is full"), 2, ("state", {"state": "failed"})),
        (KeyboardInterrupt(), 130, ("state", {"state": "failed", "reason": "interrupted"})),
        (None, 143, ("state", {"state": "failed", "reason": "terminated"})),
        (ValueError("a bug"), 1, ("state", {"state": "failed"})),
    ],
)
def test_run_rank_turns_each_ending_into_an_exit_code(monkeypatch, capsys, raised, code, last):
    from ctc_tui.runner.__main__ import run_rank
    from ctc_tui.runner.stopping import Terminated

    def fail(*args, **kwargs):
        raise raised if raised is not None else Terminated

    monkeypatch.setattr(train, "run", fail)
    reporter = Events()
    assert run_rank(demo(), Path("unused"), None, reporter, False) == code
    assert reporter.events[-1] == last
    if code == 2:
        assert capsys.readouterr().err == f"error: {raised}\n"


def test_run_rank_returns_what_training_returns(monkeypatch):
    from ctc_tui.runner.__main__ import run_rank

    monkeypatch.setattr(train, "run", lambda *args, **kwargs: 0)
    reporter = Events()
    assert run_rank(demo(), Path("unused"), None, reporter, False) == 0 and reporter.events == []
