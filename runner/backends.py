"""Trainer backends: the only place where HPU, CUDA and CPU differ (which one a preset runs on:
ctc_tui.runner.load.backend_name).

``transformers.Trainer`` + ``TrainingArguments`` on CPU and CUDA; optimum-habana's ``GaudiTrainer`` +
``GaudiTrainingArguments`` + ``GaudiConfig`` on HPU. ``optimum.habana`` is imported only on the HPU
path: it cannot even be imported without Intel's Habana stack.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from ctc_tui.core.preset import Preset
from ctc_tui.runner import compiling

log = logging.getLogger("ctc_tui.runner.backends")

#: What optimum-habana's ``Habana/wav2vec2`` Gaudi config holds; used when it cannot be fetched offline.
KNOWN_GAUDI_CONFIGS: dict[str, dict[str, Any]] = {
    "Habana/wav2vec2": {"use_fused_adam": True, "use_fused_clip_norm": True, "use_torch_autocast": True},
}


def common_arguments(preset: Preset, run_dir: str, backend: str, world_size: int) -> dict[str, Any]:
    """TrainingArguments shared by every backend, under their own names."""
    t = preset.training
    kwargs: dict[str, Any] = dict(
        output_dir=run_dir,
        overwrite_output_dir=t.overwrite_output_dir,
        do_train=t.do_train,
        do_eval=t.do_eval,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        max_grad_norm=t.max_grad_norm,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=t.warmup_steps,
        warmup_ratio=t.warmup_ratio,
        seed=t.seed,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        eval_strategy=t.eval_strategy if t.do_eval else "no",  # no eval data is prepared without do_eval
        eval_steps=t.eval_steps,
        save_strategy=t.save_strategy,
        save_steps=t.save_steps,
        save_total_limit=t.save_total_limit,
        dataloader_num_workers=t.dataloader_num_workers,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=t.bf16,
        fp16=t.fp16,
        use_cpu=t.use_cpu or backend == "cpu",
        report_to=t.report_to or "none",
        remove_unused_columns=False,  # the collator picks its columns
        length_column_name="input_length",
        disable_tqdm=True,  # progress is ctc-tui's job
        dataloader_pin_memory=backend == "cuda",
        deepspeed=preset.launch.deepspeed,
    )
    if world_size > 1:
        kwargs["ddp_backend"] = {"cpu": "gloo", "cuda": "nccl", "hpu": "hccl"}[backend]
    return kwargs


def gaudi_arguments(preset: Preset) -> dict[str, Any]:
    """The GaudiTrainingArguments fields of the seed command, from the ``gaudi`` section."""
    g = preset.gaudi
    return dict(
        use_habana=True,
        use_lazy_mode=g.use_lazy_mode,
        gaudi_config_name=g.gaudi_config_name,
        use_hpu_graphs_for_training=g.use_hpu_graphs_for_training,
        use_hpu_graphs_for_inference=g.use_hpu_graphs_for_inference,
        sdp_on_bf16=g.sdp_on_bf16,
        throughput_warmup_steps=preset.training.throughput_warmup_steps,
        pipelining_fwd_bwd=g.pipelining_fwd_bwd,
        attn_implementation=preset.model.attn_implementation,
        **compile_arguments(preset),
    )


def compile_arguments(preset: Preset) -> dict[str, Any]:
    """torch.compile on HPU: GaudiTrainer compiles (backend ``hpu_backend`` unless the preset names one).
    On CPU and CUDA the runner compiles the model itself (ctc_tui.runner.compiling) and TrainingArguments
    keeps ``torch_compile`` off, so the model is not compiled twice."""
    if not compiling.requested(preset):
        return {}
    return {"torch_compile": True, "torch_compile_backend": compiling.backend_for(preset, "hpu")}


def _fit(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keep the arguments ``cls`` knows (releases differ); say which were dropped."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(k for k in kwargs if k not in known)
    if unknown:
        log.warning("%s has no %s; ignored", cls.__name__, ", ".join(unknown))
    return {k: v for k, v in kwargs.items() if k in known and v is not None}


def training_arguments(preset: Preset, run_dir: str, backend: str, world_size: int) -> Any:
    kwargs = common_arguments(preset, run_dir, backend, world_size)
    if backend == "hpu":  # resolve_gaudi_config() has run: gaudi_config_name is loadable here
        from optimum.habana import GaudiTrainingArguments

        kwargs.update(gaudi_arguments(preset))
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
