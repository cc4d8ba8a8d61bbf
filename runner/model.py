"""Model, tokenizer and feature extractor.

Three ways to get a model, told apart explicitly (the reference confuses the last two):
- ``model.architecture``: a small wav2vec2 built from a config with random weights (demo, tests);
- ``model_name_or_path`` naming a hub id: loaded from the Hugging Face cache (offline-friendly);
- ``model_name_or_path`` naming a local folder: a plain model copy *or* a Trainer checkpoint. Either way
  only its weights are loaded; resuming a run's optimiser state is ``ctc-tui run --resume``'s job.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctc_tui.core.architectures import SHAPES
from ctc_tui.core.preset import ModelSection, Preset
from ctc_tui.core.vocabreport import misfit_summary, upper_case_hint
from ctc_tui.runner.text import build_vocab

log = logging.getLogger("ctc_tui.runner.model")


class ModelError(Exception):
    """A model that cannot be loaded, with the fix."""


PROCESSOR_FILES = ("vocab.json", "tokenizer_config.json", "preprocessor_config.json")


def is_checkpoint_dir(path: str | os.PathLike[str]) -> bool:
    """A Trainer checkpoint (has trainer_state.json), as opposed to a plain model folder."""
    return Path(path, "trainer_state.json").is_file()


#: optimum-habana's fused attention (registered with transformers when GaudiTrainingArguments is built),
#: and what it becomes where that kernel does not exist.
GAUDI_FUSED_SDPA = "gaudi_fused_sdpa"
OFF_HPU_ATTENTION = "sdpa"


def attention_implementation(preset: Preset) -> str | None:
    """``model.attn_implementation`` as this device can run it: ``gaudi_fused_sdpa`` passes through on
    HPU and becomes ``sdpa`` elsewhere (with a warning), so one preset runs on Gaudi, CUDA and CPU."""
    attn = preset.model.attn_implementation
    if attn == GAUDI_FUSED_SDPA and not preset.gaudi.use_habana:
        log.warning(
            "model.attn_implementation=%s exists only on Gaudi (optimum-habana); using %s here",
            GAUDI_FUSED_SDPA,
            OFF_HPU_ATTENTION,
        )
        return OFF_HPU_ATTENTION
    return attn


def _hub_kwargs(cfg: ModelSection) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if cfg.cache_dir:
        kwargs["cache_dir"] = cfg.cache_dir
    if cfg.token:
        kwargs["token"] = cfg.token
    if cfg.trust_remote_code:
        kwargs["trust_remote_code"] = True
    return kwargs


def _explain_load_error(name: str, exc: Exception) -> ModelError:
    local = Path(name).expanduser()
    if local.exists():
        return ModelError(f"cannot load the model in {local}: {str(exc).splitlines()[0]}")
    return ModelError(
        f"cannot load model '{name}': "
        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}. "
        f"Without hub access, download it elsewhere (huggingface-cli download {name}) and copy the "
        "Hugging Face cache, or set model.model_name_or_path to a local folder."
    )


@dataclass
class Built:
    model: Any
    tokenizer: Any
    feature_extractor: Any
    config: Any
    vocab: dict[str, int] | None


def _regularisation(cfg: ModelSection) -> dict[str, Any]:
    return {
        "feat_proj_dropout": cfg.feat_proj_dropout,
        "attention_dropout": cfg.attention_dropout,
        "hidden_dropout": cfg.hidden_dropout,
        "final_dropout": cfg.final_dropout,
        "activation_dropout": cfg.activation_dropout,
        "mask_time_prob": cfg.mask_time_prob,
        "mask_time_length": cfg.mask_time_length,
        "mask_feature_prob": cfg.mask_feature_prob,
        "mask_feature_length": cfg.mask_feature_length,
        "layerdrop": cfg.layerdrop,
        "ctc_loss_reduction": cfg.ctc_loss_reduction,
        "ctc_zero_infinity": cfg.ctc_zero_infinity,
        "add_adapter": cfg.add_adapter,
    }


@dataclass
class TokenizerChoice:
    """The tokenizer a run trains with, the vocabulary built for it (None when an existing one is kept),
    whether the CTC head must be re-initialised (a new vocabulary replaces the model's own), and the
    log line that says so ("" when nothing is worth saying)."""

    tokenizer: Any
    vocab: dict[str, int] | None
    reinit_head: bool = False
    note: str = ""


def existing_vocabulary(cfg: ModelSection) -> tuple[str, dict[str, int]] | None:
    """(where, vocabulary) of the tokenizer the model comes with: ``tokenizer_name_or_path``, or a
    ``vocab.json`` in the model's local folder or in its Hugging Face cache snapshot; None without."""
    if cfg.architecture and not cfg.tokenizer_name_or_path:
        return None
    name = cfg.tokenizer_name_or_path or cfg.model_name_or_path
    local = Path(name).expanduser()
    path: str | None = None
    if local.is_dir():
        path = str(local / "vocab.json") if (local / "vocab.json").is_file() else None
    else:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(name, "vocab.json", cache_dir=cfg.cache_dir)
        path = hit if isinstance(hit, str) else None
    if path is None:
        if cfg.tokenizer_name_or_path:  # named explicitly: loaded as it is (it may not be a vocab.json one)
            return name, {}
        return None
    try:
        vocab = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the vocabulary {path}: {exc}") from None
    if vocab and all(isinstance(v, dict) for v in vocab.values()):  # a multilingual vocab.json: per language
        vocab = {k: i for lang in vocab.values() for k, i in lang.items()}
    return name, vocab


def choose_tokenizer(
    preset: Preset, train_texts: list[str], out_dir: Path, spaced: bool = True
) -> TokenizerChoice:
    """``model.vocabulary``'s choice: the model's own tokenizer (``keep``; ``auto`` when every character
    of the normalised training text fits it), or a character vocabulary built from that text (``new``;
    ``auto`` otherwise) and written to ``out_dir/vocab.json``, the CTC head then re-initialised."""
    cfg = preset.model
    existing = existing_vocabulary(cfg)
    if existing is None:
        return TokenizerChoice(*_new_tokenizer(preset, train_texts, out_dir, spaced))
    name, vocab = existing
    misfit = misfit_summary(train_texts, vocab) if vocab else ""
    hint = upper_case_hint(train_texts, vocab) if vocab else ""
    keep = (
        bool(cfg.tokenizer_name_or_path)
        or cfg.vocabulary == "keep"
        or (cfg.vocabulary == "auto" and not misfit)
    )
    if keep:
        try:
            tokenizer = _load_tokenizer(name, cfg)
        except Exception as exc:  # noqa: BLE001 - every failure here means the same thing to the user
            raise _explain_load_error(name, exc) from None
        note = f"kept the vocabulary of {name} ({len(tokenizer)} tokens)"
        if misfit:
            note += f"; characters it lacks become {tokenizer.unk_token}: {misfit}{hint}"
        return TokenizerChoice(tokenizer, None, False, note)
    tokenizer, built = _new_tokenizer(preset, train_texts, out_dir, spaced)
    why = f"the training text has characters it lacks: {misfit}{hint}" if misfit else "model.vocabulary=new"
    note = (
        f"built a new vocabulary of {len(built)} tokens instead of {name}'s ({why}); "
        "the CTC head (lm_head) is re-initialised"
    )
    return TokenizerChoice(tokenizer, built, True, note)


def _load_tokenizer(name: str, cfg: ModelSection) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, **_hub_kwargs(cfg))


def make_tokenizer(
    preset: Preset, train_texts: list[str], out_dir: Path, spaced: bool = True
) -> tuple[Any, dict[str, int] | None]:
    """The tokenizer and the vocabulary built for it (None when the model's own is kept): see
    ``choose_tokenizer``."""
    choice = choose_tokenizer(preset, train_texts, out_dir, spaced)
    return choice.tokenizer, choice.vocab


def _new_tokenizer(
    preset: Preset, train_texts: list[str], out_dir: Path, spaced: bool
) -> tuple[Any, dict[str, int]]:
    """A character vocabulary built from the (normalised) training text, written to
    ``out_dir/vocab.json``, and its tokenizer."""
    from transformers import Wav2Vec2CTCTokenizer

    data = preset.data
    vocab = build_vocab(train_texts, data.word_delimiter_token, data.unk_token, data.pad_token, spaced=spaced)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab_file = out_dir / "vocab.json"
    tmp = vocab_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(vocab, ensure_ascii=False, indent=1))
    os.replace(tmp, vocab_file)
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_file),
        unk_token=data.unk_token,
        pad_token=data.pad_token,
        word_delimiter_token=data.word_delimiter_token,
        do_lower_case=False,
    )
    return tokenizer, vocab


def build(preset: Preset, tokenizer: Any, vocab: dict[str, int] | None, reinit_head: bool = False) -> Built:
    """Config, feature extractor and CTC model for ``preset``, sized to ``tokenizer``; ``reinit_head``:
    a pretrained model's CTC head starts afresh (its rows belonged to another vocabulary)."""
    cfg = preset.model
    update = _regularisation(cfg)
    update.update(pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer))
    update["gradient_checkpointing"] = preset.training.gradient_checkpointing
    attn = attention_implementation(preset)
    if cfg.architecture:
        config, feature_extractor, model = _from_architecture(cfg, update, attn)
    else:
        config, feature_extractor, model = _from_pretrained(cfg, update, attn)
    if reinit_head and not cfg.architecture:
        reinitialise_head(model)
    if cfg.freeze_feature_encoder and hasattr(model, "freeze_feature_encoder"):
        model.freeze_feature_encoder()
    return Built(
        model=model, tokenizer=tokenizer, feature_extractor=feature_extractor, config=config, vocab=vocab
    )


def reinitialise_head(model: Any) -> None:
    """Fresh weights for the CTC head (``lm_head``) by the model's own initialiser: a head of the same
    size as the new vocabulary would otherwise keep rows that meant other characters."""
    head = getattr(model, "lm_head", None)
    if head is not None:
        model._init_weights(head)


def _from_architecture(cfg: ModelSection, update: dict[str, Any], attn: str | None) -> tuple[Any, Any, Any]:
    """A wav2vec2 of the named shape with random weights: (config, feature extractor, model)."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    shape = dict(SHAPES[cfg.architecture])
    shape.update(update)
    shape.update(cfg.config_overrides)
    try:
        config = Wav2Vec2Config(**shape)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"model.config_overrides: {exc}") from None
    if attn:
        config._attn_implementation = attn
    return config, _architecture_feature_extractor(), Wav2Vec2ForCTC(config)


def _architecture_feature_extractor() -> Any:
    """The feature extractor of a model built from ``model.architecture``: raw 16 kHz samples,
    normalised."""
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    )


def feature_extractor_for(preset: Preset) -> Any:
    """The feature extractor ``build`` gives ``preset``'s model, without loading the model (what
    ``ctc-tui preprocess`` needs to fill the cache under the key the run will look for)."""
    cfg = preset.model
    if cfg.architecture:
        return _architecture_feature_extractor()
    from transformers import AutoFeatureExtractor

    name = cfg.model_name_or_path
    if Path(name).expanduser().is_dir():
        name = str(Path(name).expanduser())
    try:
        return AutoFeatureExtractor.from_pretrained(name, **_hub_kwargs(cfg))
    except Exception as exc:  # noqa: BLE001
        raise _explain_load_error(name, exc) from None


def _from_pretrained(cfg: ModelSection, update: dict[str, Any], attn: str | None) -> tuple[Any, Any, Any]:
    """A hub id or a local folder (a model copy or a Trainer checkpoint: only its weights are used):
    (config, feature extractor, model), the config updated with the preset's settings."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForCTC

    name = cfg.model_name_or_path
    kwargs = _hub_kwargs(cfg)
    attn_kwargs = {"attn_implementation": attn} if attn else {}
    if Path(name).expanduser().is_dir():
        name = str(Path(name).expanduser())
        if is_checkpoint_dir(name):
            log.info(
                "%s is a Trainer checkpoint: fine-tuning from its weights (use --resume to continue "
                "that run with its optimizer state)",
                name,
            )
    try:
        config = AutoConfig.from_pretrained(name, **kwargs, **attn_kwargs)
        feature_extractor = AutoFeatureExtractor.from_pretrained(name, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _explain_load_error(name, exc) from None
    config.update(update)
    config.update(cfg.config_overrides)
    try:
        model = AutoModelForCTC.from_pretrained(
            name, config=config, ignore_mismatched_sizes=True, **kwargs, **attn_kwargs
        )
    except Exception as exc:  # noqa: BLE001
        raise _explain_load_error(name, exc) from None
    return config, feature_extractor, model


def save_processor(built: Built, out_dir: Path) -> None:
    """Save feature extractor + tokenizer (= the processor) and config, so the run dir transcribes."""
    from transformers import Wav2Vec2Processor

    processor = Wav2Vec2Processor(feature_extractor=built.feature_extractor, tokenizer=built.tokenizer)
    processor.save_pretrained(str(out_dir))
    built.config.save_pretrained(str(out_dir))
