"""What GaudiTrainingArguments refuses when a run starts, said before it starts.

``refusals`` mirrors the checks of optimum-habana's ``GaudiTrainingArguments.__post_init__`` (and the
HPU-only torch.compile backend off the HPU): ``validate``, ``check``, ``import-command`` and every load
refuse these with the reason and the fix. ``warnings`` are settings that run but not as written
(``check`` and ``validate`` print them). Each rule is proven against the real class in
tests/unit/test_gaudi_rules.py. Both halves import this module: no torch here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the preset model is only named in annotations here
    from ctc_tui.core.preset import Preset

HPU_BACKEND = "hpu_backend"
#: GaudiTrainingArguments' fields that only matter with torch.compile.
COMPILE_ONLY = (
    "compile_dynamic",
    "use_regional_compilation",
    "cache_size_limit",
    "compile_from_sec_iteration",
    "use_compiled_autograd",
)
#: TrainingArguments fields GaudiTrainingArguments refuses, with optimum-habana's reason.
UNSUPPORTED_ON_HPU = {
    "training.fp16_full_eval": "fp16 is not supported on Gaudi: use training.bf16 (or the GaudiConfig)",
    "training.tf32": "tf32 is not supported by optimum-habana: leave training.tf32 unset",
    "training.tpu_num_cores": "TPUs are not supported by optimum-habana: leave it unset",
    "training.tpu_metrics_debug": "TPUs are not supported by optimum-habana: leave it unset",
    "training.mp_parameters": "mp_parameters is not supported by optimum-habana: leave it unset",
}


def compiles(preset: Preset) -> bool:
    """torch.compile is asked for (GaudiTrainingArguments turns it on for a backend or mode too)."""
    t = preset.training
    return bool(t.torch_compile or t.torch_compile_backend or t.torch_compile_mode)


def hpu_graph_keys(preset: Preset) -> list[str]:
    g = preset.gaudi
    names = ("use_hpu_graphs_for_training", "use_hpu_graphs_for_inference", "use_hpu_graphs")
    return [f"gaudi.{name}" for name in names if getattr(g, name)]


def refusals(preset: Preset) -> list[tuple[str, str]]:
    """(key, message) for each setting the trainer would refuse at start."""
    if not preset.gaudi.use_habana:
        return _off_hpu(preset)
    out = _modes(preset) + _graph_options(preset)
    for key, why in UNSUPPORTED_ON_HPU.items():
        section, name = key.split(".")
        if getattr(getattr(preset, section), name):
            out.append((key, why))
    return out


def _off_hpu(preset: Preset) -> list[tuple[str, str]]:
    if preset.training.torch_compile_backend == HPU_BACKEND:
        return [
            (
                "training.torch_compile_backend",
                "hpu_backend exists only on Gaudi: leave it unset off the HPU (inductor), or set "
                "gaudi.use_habana=true",
            )
        ]
    return []


def _modes(preset: Preset) -> list[tuple[str, str]]:
    out = []
    lazy = preset.gaudi.use_lazy_mode
    if compiles(preset) and lazy:
        out.append(
            (
                "gaudi.use_lazy_mode",
                "torch.compile runs in eager mode only (optimum-habana: 'Dynamo and lazy are mutually "
                "exclusive'): set gaudi.use_lazy_mode=false (ranks then get PT_HPU_LAZY_MODE=0), or "
                "training.torch_compile=false",
            )
        )
    graphs = hpu_graph_keys(preset)
    if graphs and not lazy and not preset.training.torch_compile_backend:
        out.append(
            (
                graphs[0],
                "HPU graphs need lazy mode or a compile backend (optimum-habana refuses "
                f"{' and '.join(graphs)} in eager mode otherwise): set "
                "training.torch_compile_backend=hpu_backend with training.torch_compile=true, "
                "or gaudi.use_lazy_mode=true, or turn the HPU graphs off",
            )
        )
    return out


def _graph_options(preset: Preset) -> list[tuple[str, str]]:
    if hpu_graph_keys(preset):
        return []
    g = preset.gaudi
    out = []
    if g.disable_tensor_cache_hpu_graphs:
        out.append(
            (
                "gaudi.disable_tensor_cache_hpu_graphs",
                "needs HPU graphs: set gaudi.use_hpu_graphs_for_training",
            )
        )
    if g.max_hpu_graphs is not None:
        out.append(("gaudi.max_hpu_graphs", "needs HPU graphs: set gaudi.use_hpu_graphs_for_training"))
    return out


def warnings(preset: Preset) -> list[tuple[str, str]]:
    """(key, message) for settings that run, but not as written."""
    if not preset.gaudi.use_habana:
        return []
    out = []
    t, g = preset.training, preset.gaudi
    if t.gradient_checkpointing and g.use_hpu_graphs_for_inference:
        out.append(
            (
                "gaudi.use_hpu_graphs_for_inference",
                "with training.gradient_checkpointing, optimum-habana checkpoints non-reentrantly on HPU and "
                "evaluates without inference HPU graphs: expect slower evaluation",
            )
        )
    if compiles(preset) and t.torch_compile_backend not in (None, HPU_BACKEND):
        out.append(
            (
                "training.torch_compile_backend",
                f"{t.torch_compile_backend!r} on Gaudi: hpu_backend is the backend Intel supports there",
            )
        )
    if not compiles(preset):
        for name in COMPILE_ONLY:
            if getattr(g, name):
                out.append((f"gaudi.{name}", "has no effect without training.torch_compile=true"))
    return out
