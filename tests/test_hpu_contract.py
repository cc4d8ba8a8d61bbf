"""The HPU backend, as far as a machine without Gaudi allows.

``import optimum.habana`` fails without Intel's Habana stack (its __init__ shells out to find
habana-torch-plugin). A stand-in package whose ``__path__`` is the real optimum/habana folder skips
only that check, so the real GaudiTrainingArguments, GaudiConfig and GaudiTrainer classes are used.
What cannot run here: anything that touches an HPU (device placement, HPU graphs, hccl); the
arguments are therefore built with use_habana=False/use_cpu=True for construction only, after
checking that the runner asks for use_habana=True.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import REPO
from ctc_tui.core.preset import load_preset
from ctc_tui.runner import backends

SEED = REPO / "presets" / "librispeech-100h-2card-mpi.yaml"


@pytest.fixture(scope="module")
def optimum_habana():
    spec = importlib.util.find_spec("optimum")
    assert spec is not None and spec.submodule_search_locations, "pip install optimum-habana (the [gaudi] extra)"
    folder = next(Path(p) / "habana" for p in spec.submodule_search_locations if (Path(p) / "habana").is_dir())
    saved = {k: v for k, v in sys.modules.items() if k.startswith("optimum.habana")}
    stub = types.ModuleType("optimum.habana")
    stub.__path__ = [str(folder)]  # the real package, minus the __init__ that needs the Habana stack
    sys.modules["optimum.habana"] = stub
    from optimum.habana.transformers.gaudi_configuration import GaudiConfig
    from optimum.habana.transformers.trainer import GaudiTrainer
    from optimum.habana.transformers.training_args import GaudiTrainingArguments

    stub.GaudiConfig, stub.GaudiTrainer, stub.GaudiTrainingArguments = GaudiConfig, GaudiTrainer, GaudiTrainingArguments
    yield stub
    for key in [k for k in sys.modules if k.startswith("optimum.habana")]:
        del sys.modules[key]
    sys.modules.update(saved)


@pytest.mark.parametrize("name", ["librispeech-100h-2card-mpi", "librispeech-100h-8card-mpi",
                                  "librispeech-100h-8card-deepspeed"])
def test_seed_preset_lands_in_gaudi_training_arguments(optimum_habana, tmp_path, name):
    import dataclasses

    preset = load_preset(REPO / "presets" / f"{name}.yaml")
    kwargs = backends.common_arguments(preset, str(tmp_path), "hpu", preset.launch.world_size)
    kwargs.update(backends.gaudi_arguments(preset))
    # Every argument the runner passes is a GaudiTrainingArguments field of that exact name.
    fields = {f.name for f in dataclasses.fields(optimum_habana.GaudiTrainingArguments)}
    assert set(kwargs) <= fields, set(kwargs) - fields
    hpu_only = {"use_habana": True, "use_lazy_mode": True, "gaudi_config_name": "Habana/wav2vec2",
                "use_hpu_graphs_for_training": True, "use_hpu_graphs_for_inference": True, "ddp_backend": "hccl"}
    for name, value in hpu_only.items():
        assert kwargs[name] == value, name
    # Constructing with use_habana=True sets up an HPU (habana_frameworks), which cannot exist here:
    # the HPU-only switches are turned off for construction, everything else lands as on Gaudi.
    kwargs.update(use_habana=False, use_lazy_mode=False, gaudi_config_name=None, use_hpu_graphs_for_training=False,
                  use_hpu_graphs_for_inference=False, ddp_backend=None, use_cpu=True)
    args = optimum_habana.GaudiTrainingArguments(**backends._fit(optimum_habana.GaudiTrainingArguments, kwargs))
    expected = {
        "sdp_on_bf16": True, "throughput_warmup_steps": 3, "bf16": True,
        "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8, "learning_rate": 3e-4,
        "warmup_steps": 500, "num_train_epochs": 1, "dataloader_num_workers": 8, "overwrite_output_dir": True,
        "attn_implementation": "sdpa", "output_dir": str(tmp_path), "seed": 42, "do_train": True, "do_eval": True,
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
    from ctc_tui.runner.train import ReportingMixin

    cls = backends.trainer_class("hpu", ReportingMixin)
    assert cls.__mro__[1] is ReportingMixin and issubclass(cls, optimum_habana.GaudiTrainer)
    # the methods the mixin overrides exist on GaudiTrainer with the same names
    for name in ("training_step", "_get_train_sampler", "evaluate", "_save_checkpoint", "prediction_step"):
        assert hasattr(optimum_habana.GaudiTrainer, name), name


def test_seed_presets_pad_to_buckets_on_hpu_and_dynamically_elsewhere():
    from ctc_tui.runner.batching import bucket_boundaries
    from ctc_tui.runner.train import static_shape_padding

    preset = load_preset(SEED)
    lengths = [16000 * s // 10 for s in range(10, 200, 3)]  # 1.0 .. 19.9 s
    padding = static_shape_padding(preset, "hpu", 16000, lengths)
    assert padding == {"pad_to_lengths": bucket_boundaries(lengths, 8), "label_multiple": 500}
    assert len(padding["pad_to_lengths"]) == 8
    assert static_shape_padding(preset, "cpu", 16000, lengths) == {}
    reference = load_preset(SEED, ["data.padding=max_length"])  # the reference's own behaviour, on request
    assert static_shape_padding(reference, "hpu", 16000) == {"pad_to_lengths": [320000], "label_multiple": 500}


PROBE = '''
import json, os, sys
sys.path.insert(0, {repo!r})
from ctc_tui.runner import distributed

info = distributed.setup()
keys = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "PT_HPU_LAZY_MODE", "HABANA_VISIBLE_MODULES")
with open(os.path.join({out!r}, f"rank-{{info.rank}}.json"), "w") as handle:
    json.dump({{k: os.environ.get(k) for k in keys}}, handle)
'''


@pytest.mark.slow
@pytest.mark.parametrize("name, launcher", [("librispeech-100h-2card-mpi", "mpi"),
                                            ("librispeech-100h-8card-deepspeed", "deepspeed")])
def test_every_rank_gets_the_hpu_environment(tmp_path, name, launcher):
    """The seed presets' launch exactly as ctc-tui runs it (the real mpirun / DeepSpeed launcher, the
    environment launch_env and the free-card choice give), 2 ranks, with a probe module in place of the
    runner (its HPU work cannot run here): every rank sees its own RANK/LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR/PORT, PT_HPU_LAZY_MODE and HABANA_VISIBLE_MODULES naming the free cards."""
    import json
    import os
    import subprocess

    from ctc_tui import launchers as launch
    from ctc_tui.check import card_environment
    from ctc_tui.devices import CpuInfo, Detected, Device

    preset = load_preset(REPO / "presets" / f"{name}.yaml", ["launch.world_size=2"])
    assert preset.launch.launcher == launcher and preset.gaudi.use_habana
    # A node whose first card is busy (no Gaudi here: the discovery result is written out).
    cards = [Device("hpu", i, "HL-225", "Gaudi2", module_id=m, busy_pids=[4242] if i == 0 else [])
             for i, m in enumerate([3, 1, 0, 2, 7, 5, 4, 6])]
    found = Detected(devices=cards, cpu=CpuInfo(1, 2, 2, 8 << 30, 4 << 30))
    env = {**launch.launch_env(preset), **card_environment(preset, found, {})}
    assert env["HABANA_VISIBLE_MODULES"] == "0,1"  # cards 1 and 2, not the busy card 0 (module 3)
    command = launch.build_command(preset, tmp_path / "preset.yaml")
    at = max(i for i, part in enumerate(command) if part in ("-m", "--module"))
    assert command[at + 1] == "ctc_tui.runner"
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "ctc_probe.py").write_text(PROBE.format(repo=str(REPO), out=str(tmp_path)))
    command[at + 1] = "ctc_probe"
    child_env = {**os.environ, **env, "PYTHONPATH": str(probe)}
    child_env.pop("RANK", None), child_env.pop("WORLD_SIZE", None), child_env.pop("LOCAL_RANK", None)
    out = subprocess.run(command, cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    ranks = {r: json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)}
    for rank, seen in ranks.items():
        assert seen["RANK"] == str(rank) and seen["LOCAL_RANK"] == str(rank) and seen["WORLD_SIZE"] == "2"
        # (the DeepSpeed launcher spells this node 127.0.0.1)
        assert seen["MASTER_ADDR"] in ("localhost", "127.0.0.1") and seen["MASTER_PORT"] == str(preset.launch.master_port)
        assert seen["PT_HPU_LAZY_MODE"] == "1" and seen["HABANA_VISIBLE_MODULES"] == "0,1"
