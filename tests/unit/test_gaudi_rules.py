"""ctc-tui refuses, when a preset loads, exactly what the real GaudiTrainingArguments refuses at start
(ctc_tui.core.gaudi_rules), and accepts the fixed form; the eager + compile form gets PT_HPU_LAZY_MODE=0,
which is what lets the real class take torch.compile at all.

The real class cannot set up an HPU here, so each case is built as far as its check: with use_habana
(the HPU-graph checks come before the device set-up), or on the CPU (the rest). The compile check asks
the Habana stack for its version: a thin stand-in answers it.
"""

from __future__ import annotations

import types

import pytest

from ctc_tui.core.gaudi_rules import refusals, warnings
from ctc_tui.core.preset import Preset, PresetError, load_preset
from ctc_tui.launchers import launch_env
from ctc_tui.runner import backends
from tests.conftest import EAGER_COMPILE, REPO

SEED = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"
EAGER = REPO / "presets" / "librispeech-100h-8card-eager-compile.yaml"
NO_GRAPHS = ("gaudi.use_hpu_graphs_for_training=false", "gaudi.use_hpu_graphs_for_inference=false")


def unchecked(*overrides: str) -> Preset:
    """The seed preset with ``overrides``, without ctc-tui's refusals (to hand to the real class)."""
    data = load_preset(SEED).to_dict()
    for item in overrides:
        key, value = item.split("=", 1)
        section, name = key.split(".")
        data[section][name] = {"true": True, "false": False}.get(value, value)
    return Preset.model_validate(data)


def gaudi_kwargs(preset: Preset, tmp_path, **changes) -> dict:
    kwargs = backends.trainer_kwargs(preset, str(tmp_path), "hpu", 1)
    kwargs.update(gaudi_config_name=None, **changes)
    return kwargs


def on_cpu(preset: Preset, tmp_path) -> dict:
    """As on Gaudi, with the switches that need an HPU off (the checks under test come first)."""
    return gaudi_kwargs(preset, tmp_path, use_habana=False, use_cpu=True, use_lazy_mode=False)


def build(cls, kwargs):
    return cls(**backends._fit(cls, kwargs))


def test_hpu_graphs_in_eager_mode_need_a_compile_backend(optimum_habana, tmp_path):
    cls = optimum_habana.GaudiTrainingArguments
    eager = unchecked("gaudi.use_lazy_mode=false")
    assert [key for key, _ in refusals(eager)] == ["gaudi.use_hpu_graphs_for_training"]
    with pytest.raises(ValueError, match="cannot be used in eager mode"):
        build(cls, gaudi_kwargs(eager, tmp_path))
    # the fix ctc-tui names: a compile backend. The real class gets past that check, as far as the HPU
    # set-up (no HPU here), and ctc-tui loads the same settings.
    fixed = load_preset(SEED, list(EAGER_COMPILE))
    assert refusals(fixed) == []
    with pytest.raises(Exception) as later:
        build(cls, gaudi_kwargs(fixed, tmp_path))
    assert "eager mode" not in str(later.value)
    with pytest.raises(PresetError, match="torch_compile_backend=hpu_backend"):
        load_preset(SEED, ["gaudi.use_lazy_mode=false"])


def test_compile_needs_eager_mode_and_gets_it_on_every_rank(optimum_habana, tmp_path, monkeypatch):
    """GaudiTrainingArguments asserts PT_HPU_LAZY_MODE=0 for a compile backend; ctc-tui sets it to 0
    exactly in eager mode, and refuses compile in lazy mode."""
    from optimum.habana.transformers import training_args

    monkeypatch.setattr(
        training_args, "get_habana_frameworks_version", lambda: types.SimpleNamespace(minor=22)
    )
    cls = optimum_habana.GaudiTrainingArguments
    lazy = unchecked(*NO_GRAPHS, "training.torch_compile_backend=hpu_backend")
    assert [key for key, _ in refusals(lazy)] == ["gaudi.use_lazy_mode"]
    monkeypatch.setenv("PT_HPU_LAZY_MODE", launch_env(lazy)["PT_HPU_LAZY_MODE"])
    with pytest.raises(AssertionError, match="Dynamo and lazy are mutually exclusive"):
        build(cls, on_cpu(lazy, tmp_path))
    eager = load_preset(
        SEED, [*NO_GRAPHS, "gaudi.use_lazy_mode=false", "training.torch_compile_backend=hpu_backend"]
    )
    monkeypatch.setenv("PT_HPU_LAZY_MODE", launch_env(eager)["PT_HPU_LAZY_MODE"])
    args = build(cls, on_cpu(eager, tmp_path))
    assert args.torch_compile and args.torch_compile_backend == "hpu_backend"


@pytest.mark.parametrize(
    "override, match",
    [
        ("gaudi.max_hpu_graphs=4", "must be using hpu graphs to set max_hpu_graphs"),
        ("gaudi.disable_tensor_cache_hpu_graphs=true", "must be using hpu graphs"),
        ("training.fp16_full_eval=true", "not supported by optimum-habana"),
        ("training.tf32=true", "--tf32 is not supported"),
        ("training.tpu_num_cores=8", "TPUs are not supported"),
        ("training.tpu_metrics_debug=true", "TPUs are not supported"),
        ("training.mp_parameters=x", "--mp_parameters is not supported"),
    ],
)
def test_what_the_real_class_refuses_is_refused_on_load(optimum_habana, tmp_path, override, match):
    cls = optimum_habana.GaudiTrainingArguments
    refused = unchecked(*NO_GRAPHS, override)
    assert [key for key, _ in refusals(refused)] == [override.split("=")[0]]
    with pytest.raises(ValueError, match=match):
        build(cls, on_cpu(refused, tmp_path))
    with pytest.raises(PresetError, match=override.split("=")[0]):
        load_preset(SEED, [*NO_GRAPHS, override])
    build(cls, on_cpu(load_preset(SEED, list(NO_GRAPHS)), tmp_path))  # and without it: accepted


def test_the_new_gaudi_fields_reach_the_real_class(optimum_habana, tmp_path):
    cls = optimum_habana.GaudiTrainingArguments
    preset = load_preset(
        SEED,
        [
            *NO_GRAPHS,
            "gaudi.distribution_strategy=fast_ddp",
            "gaudi.non_blocking_data_copy=true",
            "gaudi.adjust_throughput=true",
            "gaudi.profiling_warmup_steps=3",
            "gaudi.profiling_steps=2",
            "gaudi.profiling_record_shapes=false",
        ],
    )
    args = build(cls, on_cpu(preset, tmp_path))
    assert args.distribution_strategy == "fast_ddp" and args.non_blocking_data_copy and args.adjust_throughput
    assert (args.profiling_warmup_steps, args.profiling_steps, args.profiling_record_shapes) == (3, 2, False)
    with pytest.raises(ValueError, match="fast_ddp"):  # the class's own choices, the preset's Literal
        build(cls, {**on_cpu(preset, tmp_path), "distribution_strategy": "fsdp"})
    assert refusals(load_preset(SEED, ["gaudi.max_hpu_graphs=4"])) == []  # with the seed's HPU graphs


def test_the_shipped_eager_compile_preset_is_what_the_real_class_takes(optimum_habana, tmp_path):
    preset = load_preset(EAGER)
    assert not preset.gaudi.use_lazy_mode and preset.training.torch_compile
    assert preset.training.torch_compile_backend == "hpu_backend" and refusals(preset) == []
    assert launch_env(preset)["PT_HPU_LAZY_MODE"] == "0"
    kwargs = backends.trainer_kwargs(preset, str(tmp_path), "hpu", preset.launch.world_size)
    assert kwargs["use_lazy_mode"] is False and kwargs["torch_compile"] is True


def test_gradient_checkpointing_with_inference_graphs_is_a_warning():
    preset = load_preset(SEED, ["training.gradient_checkpointing=true"])
    (warning,) = warnings(preset)
    assert warning[0] == "gaudi.use_hpu_graphs_for_inference" and "non-reentrant" in warning[1]
    assert warnings(load_preset(SEED)) == []
    off = load_preset(SEED, ["gaudi.use_compiled_autograd=true"])
    assert warnings(off) == [
        ("gaudi.use_compiled_autograd", "has no effect without training.torch_compile=true")
    ]
