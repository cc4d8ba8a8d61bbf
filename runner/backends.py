"""Trainer backends: the only place where HPU, CUDA and CPU differ (which one a preset runs on:
ctc_tui.runner.load.backend_name).

``transformers.Trainer`` + ``TrainingArguments`` on CPU and CUDA; optimum-habana's ``GaudiTrainer`` +
``GaudiTrainingArguments`` + ``GaudiConfig`` on HPU. Their arguments are not listed here: every preset leaf
named like a field of the class goes to it (the fields come from the checked-in snapshot,
ctc_tui.core.trainer_args), plus the few ctc-tui sets itself. ``optimum.habana`` is imported only on the HPU
path: it cannot even be imported without Intel's Habana stack.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from ctc_tui.core import trainer_args
from ctc_tui.core.preset import Preset
from ctc_tui.runner import compiling

log = logging.getLogger("ctc_tui.runner.backends")

#: What optimum-habana's ``Habana/wav2vec2`` Gaudi config holds; used when it cannot be fetched offline.
KNOWN_GAUDI_CONFIGS: dict[str, dict[str, Any]] = {
    "Habana/wav2vec2": {"use_fused_adam": True, "use_fused_clip_norm": True, "use_torch_autocast": True},
}


#: Preset leaves named like a trainer argument that ctc-tui consumes itself instead.
HELD_BACK = {
    "group_by_length": "ctc-tui's own length sampler (ctc_tui.runner.batching) groups the batches",
    "output_dir": "the resolved run directory is passed",
}


def preset_arguments(preset: Preset, backend: str) -> dict[str, Any]:
    """Every preset leaf that is a field of the backend's arguments class, under its own name (the
    snapshot: ctc_tui.core.trainer_args), unset ones left to the trainer's default. The gaudi section
    counts on HPU only."""
    fields = trainer_args.field_names(gaudi=backend == "hpu")
    sections = (
        ("model", "training", "gaudi", "launch") if backend == "hpu" else ("model", "training", "launch")
    )
    kwargs: dict[str, Any] = {}
    for section in sections:
        for name, value in getattr(preset, section).model_dump().items():
            if name in fields and name not in HELD_BACK and value is not None:
                kwargs[name] = value
    return kwargs


def owned_arguments(preset: Preset, run_dir: str, backend: str, world_size: int) -> dict[str, Any]:
    """The arguments ctc-tui sets itself (ctc_tui.core.trainer_args.OWNED and the run's own)."""
    t = preset.training
    kwargs: dict[str, Any] = dict(
        output_dir=run_dir,
        logging_strategy="steps",
        eval_strategy=t.eval_strategy if t.do_eval else "no",  # no eval data is prepared without do_eval
        use_cpu=t.use_cpu or backend == "cpu",
        report_to=t.report_to or "none",
        remove_unused_columns=False,  # the collator picks its columns
        length_column_name="input_length",
        disable_tqdm=True,  # progress is ctc-tui's job
    )
    if backend == "hpu":
        kwargs["use_habana"] = True
    if world_size > 1:
        kwargs["ddp_backend"] = {"cpu": "gloo", "cuda": "nccl", "hpu": "hccl"}[backend]
    return kwargs


def best_model_arguments(preset: Preset, best_metric: str | None) -> dict[str, Any]:
    """metric_for_best_model (``best_metric``, the run's metric plan, else the preset's; lower is better
    for WER, CER and the loss) and load_best_model_at_end, when the run evaluates."""
    t = preset.training
    metric = best_metric or t.metric_for_best_model
    if not t.do_eval or not metric:
        return {}
    return {
        "metric_for_best_model": metric,
        "greater_is_better": False,
        "load_best_model_at_end": t.load_best_model_at_end,
    }


def trainer_kwargs(
    preset: Preset, run_dir: str, backend: str, world_size: int, best_metric: str | None = None
) -> dict[str, Any]:
    """Everything the backend's arguments class is built from: the preset's leaves, the best-model
    metric (``best_model_arguments``), ctc-tui's own."""
    kwargs = {"dataloader_pin_memory": backend == "cuda"}  # a default the preset may override
    kwargs.update(preset_arguments(preset, backend))
    kwargs.update(best_model_arguments(preset, best_metric))
    kwargs.update(owned_arguments(preset, run_dir, backend, world_size))
    if backend != "hpu":  # the runner compiles the model itself (ctc_tui.runner.compiling): not twice
        for name in compiling.TRAINER_FIELDS:
            kwargs.pop(name, None)
    return kwargs


def _fit(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keep the arguments ``cls`` knows (an installed release other than the snapshot's); say which
    were dropped."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        log.warning("%s has no %s; ignored", cls.__name__, ", ".join(unknown))
    return {k: v for k, v in kwargs.items() if k in known and v is not None}


def training_arguments(
    preset: Preset, run_dir: str, backend: str, world_size: int, best_metric: str | None = None
) -> Any:
    kwargs = trainer_kwargs(preset, run_dir, backend, world_size, best_metric)
    if backend == "hpu":  # resolve_gaudi_config() has run: gaudi_config_name is loadable here
        from optimum.habana import GaudiTrainingArguments

        return GaudiTrainingArguments(**_fit(GaudiTrainingArguments, kwargs))
    from transformers import TrainingArguments

    return TrainingArguments(**_fit(TrainingArguments, kwargs))


def resolve_gaudi_config(preset: Preset, run_dir: str) -> Any:
    """Load the GaudiConfig and make ``gaudi_config_name`` loadable offline.

    GaudiTrainingArguments loads ``gaudi_config_name`` again while it sets up the device, from the hub
    for a hub id. On a node without hub access a known config (``Habana/wav2vec2``) is written to
    ``RUN_DIR/gaudi_config.json`` and the preset is pointed at that folder instead.
    """
    from optimum.habana import GaudiConfig

    name = preset.gaudi.gaudi_config_name
    if not name:
        return GaudiConfig()
    try:
        # A known config is never fetched: the local cache or its known values, so offline nodes do not
        # wait on hub retries and runs do not depend on the hub's copy.
        local_only = {"local_files_only": True} if name in KNOWN_GAUDI_CONFIGS else {}
        return GaudiConfig.from_pretrained(
            name, cache_dir=preset.model.cache_dir, token=preset.model.token, **local_only
        )
    except Exception as exc:  # noqa: BLE001 - offline clusters cannot reach the hub
        if name not in KNOWN_GAUDI_CONFIGS:
            raise RuntimeError(
                f"cannot load gaudi_config_name {name!r} ({exc}); give a local folder or JSON"
            ) from None
        log.info(
            "GaudiConfig %s is not in the local cache; using its known values %s",
            name,
            KNOWN_GAUDI_CONFIGS[name],
        )
        write_known_gaudi_config(name, run_dir)
        preset.gaudi.gaudi_config_name = run_dir
        return GaudiConfig.from_pretrained(run_dir)


def write_known_gaudi_config(name: str, folder: str) -> Path:
    path = Path(folder) / "gaudi_config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(KNOWN_GAUDI_CONFIGS[name], indent=2))
    return path


def trainer_class(backend: str, mixin: type) -> type:
    """The Trainer class for ``backend`` with ctc-tui's reporting mixed in."""
    if backend == "hpu":
        from optimum.habana import GaudiTrainer

        base: type = GaudiTrainer
    else:
        from transformers import Trainer

        base = Trainer
    return type(f"CtcTui{base.__name__}", (mixin, base), {})


def trainer_extra_kwargs(gaudi_config: Any) -> dict[str, Any]:
    return {"gaudi_config": gaudi_config} if gaudi_config is not None else {}
