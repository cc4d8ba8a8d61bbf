"""The HPU backend, as far as a machine without Gaudi allows.

``import optimum.habana`` fails without Intel's Habana stack (its __init__ shells out to find
habana-torch-plugin). A stand-in package whose ``__path__`` is the real optimum/habana folder skips
only that check, so the real GaudiTrainingArguments, GaudiConfig and GaudiTrainer classes are used.
What cannot run here: anything that touches an HPU (device placement, HPU graphs, hccl); the
arguments are therefore built with use_habana=False/use_cpu=True for construction only, after
checking that the runner asks for use_habana=True.
"""

from __future__ import annotations

import pytest

from ctc_tui.core.preset import load_preset
from ctc_tui.runner import backends
from tests.conftest import REPO

SEED = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"


@pytest.mark.parametrize(
    "name", ["librispeech-100h-2card-mpi", "librispeech-100h-8card-mpi", "librispeech-100h-8card-deepspeed"]
)
def test_seed_preset_lands_in_gaudi_training_arguments(optimum_habana, tmp_path, name):
    import dataclasses

    preset = load_preset(REPO / "presets" / f"{name}.yaml")
    kwargs = backends.trainer_kwargs(preset, str(tmp_path), "hpu", preset.launch.world_size)
    # Every argument the runner passes is a GaudiTrainingArguments field of that exact name.
    fields = {f.name for f in dataclasses.fields(optimum_habana.GaudiTrainingArguments)}
    assert set(kwargs) <= fields, set(kwargs) - fields
    hpu_only = {
        "use_habana": True,
        "use_lazy_mode": True,
        "gaudi_config_name": "Habana/wav2vec2",
        "use_hpu_graphs_for_training": True,
        "use_hpu_graphs_for_inference": True,
        "ddp_backend": "hccl",
    }
    for name, value in hpu_only.items():
        assert kwargs[name] == value, name
    # Constructing with use_habana=True sets up an HPU (habana_frameworks), which cannot exist here:
    # the HPU-only switches are turned off for construction, everything else lands as on Gaudi.
    kwargs.update(
        use_habana=False,
        use_lazy_mode=False,
        gaudi_config_name=None,
        use_hpu_graphs_for_training=False,
        use_hpu_graphs_for_inference=False,
        ddp_backend=None,
        use_cpu=True,
    )
    args = optimum_habana.GaudiTrainingArguments(
        **backends._fit(optimum_habana.GaudiTrainingArguments, kwargs)
    )
    expected = {
        "sdp_on_bf16": True,
        "throughput_warmup_steps": 3,
        "bf16": True,
        "per_device_train_batch_size": 4,
        "per_device_eval_batch_size": 8,
        "learning_rate": 3e-4,
        "warmup_steps": 500,
        "num_train_epochs": 1,
        "dataloader_num_workers": 8,
        "overwrite_output_dir": True,
        "attn_implementation": "sdpa",
        "output_dir": str(tmp_path),
        "seed": 42,
        "do_train": True,
        "do_eval": True,
    }
    for name, value in expected.items():
        assert getattr(args, name) == value, name


def test_offline_node_gets_the_known_gaudi_config(optimum_habana, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    preset = load_preset(SEED)
    config = backends.resolve_gaudi_config(preset, str(tmp_path))
    assert config.use_fused_adam and config.use_fused_clip_norm and config.use_torch_autocast
    assert preset.gaudi.gaudi_config_name == str(tmp_path)  # GaudiTrainingArguments reloads it from here
    assert optimum_habana.GaudiConfig.from_pretrained(str(tmp_path)).use_torch_autocast
    unknown = load_preset(SEED, [f"gaudi.gaudi_config_name={tmp_path}/no-such-config"])
    with pytest.raises(RuntimeError, match="give a local folder"):
        backends.resolve_gaudi_config(unknown, str(tmp_path / "x"))


def test_gaudi_config_known_values(optimum_habana):
    config = optimum_habana.GaudiConfig(**backends.KNOWN_GAUDI_CONFIGS["Habana/wav2vec2"])
    assert config.use_fused_adam and config.use_fused_clip_norm and config.use_torch_autocast


def test_reporting_mixin_composes_with_gaudi_trainer(optimum_habana):
    from ctc_tui.runner.trainer import ReportingMixin

    cls = backends.trainer_class("hpu", ReportingMixin)
    assert cls.__mro__[1] is ReportingMixin and issubclass(cls, optimum_habana.GaudiTrainer)
    # the methods the mixin overrides exist on GaudiTrainer with the same names
    overridden = (
        "training_step",
        "_get_train_sampler",
        "evaluate",
        "_save_checkpoint",
        "_rotate_checkpoints",
        "save_model",
        "prediction_step",
    )
    for name in (*overridden, "evaluation_loop", "num_examples"):
        assert hasattr(optimum_habana.GaudiTrainer, name), name


def test_seed_presets_pad_to_buckets_on_hpu_and_dynamically_elsewhere():
    from ctc_tui.runner.batching import bucket_boundaries
    from ctc_tui.runner.collate import static_shape_padding

    preset = load_preset(SEED)
    lengths = [16000 * s // 10 for s in range(10, 200, 3)]  # 1.0 .. 19.9 s
    padding = static_shape_padding(preset, "hpu", 16000, lengths)
    assert padding == {"pad_to_lengths": bucket_boundaries(lengths, 8), "label_multiple": 500}
    assert len(padding["pad_to_lengths"]) == 8
    assert static_shape_padding(preset, "cpu", 16000, lengths) == {}
    reference = load_preset(SEED, ["data.padding=max_length"])  # the reference's own behaviour, on request
    assert static_shape_padding(reference, "hpu", 16000) == {
        "pad_to_lengths": [320000],
        "label_multiple": 500,
    }


def test_gaudi_fused_sdpa_lands_in_gaudi_training_arguments(optimum_habana, tmp_path):
    """optimum-habana's current README passes --attn_implementation gaudi_fused_sdpa: on HPU it reaches
    GaudiTrainingArguments unchanged (which registers the kernel with transformers on Gaudi)."""
    from ctc_tui.launchers.reference import parse_command

    preset = parse_command((REPO / "tests" / "data" / "optimum-habana" / "ctc-mpi-8.sh").read_text())
    kwargs = backends.trainer_kwargs(preset, str(tmp_path), "hpu", preset.launch.world_size)
    assert kwargs["attn_implementation"] == "gaudi_fused_sdpa"
    kwargs.update(
        use_habana=False, use_lazy_mode=False, gaudi_config_name=None, ddp_backend=None, use_cpu=True
    )
    kwargs.update(use_hpu_graphs_for_training=False, use_hpu_graphs_for_inference=False)
    args = optimum_habana.GaudiTrainingArguments(
        **backends._fit(optimum_habana.GaudiTrainingArguments, kwargs)
    )
    assert args.attn_implementation == "gaudi_fused_sdpa"
