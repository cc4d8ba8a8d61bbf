"""The preset: one YAML file that says everything a run needs.

Sections are ``model``, ``data``, ``training``, ``gaudi`` and ``launch``. Every leaf that has a
counterpart in optimum-habana's ``run_speech_recognition_ctc.py`` or in (Gaudi)TrainingArguments
carries exactly that name, so an existing command line maps onto a preset one flag to one key.

This module is shared by both halves of the project (the login-node ``ctc_tui`` and the compute-node
``runner``): it must never import torch, transformers or datasets.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional, Union, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from ctc_tui.core.architectures import ARCHITECTURES, DEFAULT_MODEL
from ctc_tui.core.fielddocs import field_doc
from ctc_tui.core.hosts import check_host
from ctc_tui.core.names import LAUNCHERS
from ctc_tui.core.presetfile import PRESET_FILENAME, local_model_path, read_document  # noqa: F401 (re-exported)
from ctc_tui.core.private import FROM_ENV
from ctc_tui.core.problems import PresetError, Problem
from ctc_tui.core.sources import SOURCES
from ctc_tui.core.trainer_args import OWNED, with_trainer_arguments
from ctc_tui.core.yamlio import YamlDocument, YamlError, parse_scalar

#: The seed's list, as the reference README passes it: ``'",?.!-;:\\"“%‘”"'``.
SEED_CHARS_TO_IGNORE = [",", "?", ".", "!", "-", ";", ":", '"', "“", "%", "‘", "”", "\\"]

# The shape a leaf value may take when it is passed through to a model config.
ConfigValue = Union[bool, int, float, str, list[int], list[float], list[str], None]


class _Section(BaseModel):
    # Field docstrings are read from this file only when asked for (ctc_tui.core.fielddocs): pydantic's
    # use_attribute_docstrings reads them for every class at import, on the app's way to its first screen.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    #: Trainer arguments passed through unchanged (ctc_tui.core.trainer_args): dumped only once set.
    __pass_through__: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _drop_unset_pass_through(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in self.__pass_through__:
            if data.get(name, 0) is None:
                del data[name]
        return data


class ModelSection(_Section):
    """Which network to fine-tune and how its regularisation is set."""

    model_name_or_path: str = DEFAULT_MODEL
    """A hub id (read from the local Hugging Face cache when offline) or a local model directory."""
    architecture: Optional[Literal[ARCHITECTURES]] = None  # type: ignore[valid-type]
    """Build this small wav2vec2 from a config with random weights instead of loading
    model_name_or_path (for the CPU demo and tests)."""
    config_overrides: dict[str, ConfigValue] = Field(default_factory=dict)
    """Extra model-config fields (e.g. ``num_hidden_layers: 2``), applied after the ones below."""
    tokenizer_name_or_path: Optional[str] = None
    """Use this tokenizer instead of building a character vocabulary from the training text."""
    vocabulary: Literal["auto", "keep", "new"] = "auto"
    """With a model_name_or_path that has a vocabulary (a fine-tuned CTC model's vocab.json): ``keep``
    its tokenizer (characters it lacks become the unknown token), build a ``new`` one from the training
    text and re-initialise the CTC head (lm_head), or ``auto``: keep it when every training character
    fits, else new. Either way the run log says which, and what did not fit."""
    cache_dir: Optional[str] = None
    """Where pretrained models are cached (default: the Hugging Face cache)."""
    token: Optional[str] = Field(None, exclude=True, repr=False)
    """Hub token for gated or private models. Better: the HF_TOKEN environment variable or
    ``huggingface-cli login``. Never written out: a run keeps it in ``RUN_DIR/hf-token`` (mode 0600)."""
    trust_remote_code: bool = False
    """Allow code from the model or dataset repository to run."""
    attn_implementation: Optional[Literal["eager", "sdpa", "flash_attention_2", "gaudi_fused_sdpa"]] = None
    """Attention kernel: ``sdpa`` as in the seed; ``gaudi_fused_sdpa`` is optimum-habana's own fused kernel
    (its current README's choice; on CPU and CUDA it runs as ``sdpa``); ``eager`` is the portable fallback."""
    freeze_feature_encoder: bool = True
    """Freeze the convolutional feature encoder (as the reference does by default)."""
    attention_dropout: float = Field(0.0, ge=0.0, le=1.0)
    """Dropout on the attention probabilities."""
    activation_dropout: float = Field(0.0, ge=0.0, le=1.0)
    """Dropout inside the feed-forward layers."""
    feat_proj_dropout: float = Field(0.0, ge=0.0, le=1.0)
    """Dropout on the projected features."""
    hidden_dropout: float = Field(0.0, ge=0.0, le=1.0)
    """Dropout on fully connected layers in the embeddings and encoder."""
    final_dropout: float = Field(0.0, ge=0.0, le=1.0)
    """Dropout before the CTC projection."""
    mask_time_prob: float = Field(0.05, ge=0.0, le=1.0)
    """SpecAugment: probability of a frame starting a time mask."""
    mask_time_length: int = Field(10, ge=1)
    """SpecAugment: length of each time mask, in frames."""
    mask_feature_prob: float = Field(0.0, ge=0.0, le=1.0)
    """SpecAugment: probability of a feature channel starting a feature mask."""
    mask_feature_length: int = Field(10, ge=1)
    """SpecAugment: length of each feature mask, in channels."""
    layerdrop: float = Field(0.0, ge=0.0, le=1.0)
    """Probability of skipping a whole transformer layer during training."""
    ctc_loss_reduction: Literal["mean", "sum"] = "mean"
    """How the CTC loss is reduced over the batch."""
    ctc_zero_infinity: bool = False
    """Zero infinite CTC losses (inputs too short for their labels) instead of failing."""
    add_adapter: bool = False
    """Stack a convolutional adapter on the encoder (Wav2Vec2-BERT style down-sampling)."""

    @field_validator("token")
    @classmethod
    def _token_placeholder(cls, value: Optional[str]) -> Optional[str]:
        """``<from HF_TOKEN>`` (what show-command prints for a token) means no token given here."""
        return None if value in (FROM_ENV, "") else value


DataSource = Literal[SOURCES]  # type: ignore[valid-type]  (the one list: ctc_tui/core/sources.py)
Padding = Literal["auto", "longest", "max_length", "buckets"]
PADDING_CHOICES: tuple[str, ...] = get_args(Padding)
#: Words people write for a padding choice (the old gaudi.static_shapes names, transformers' ones).
PADDING_SYNONYMS = {
    "max_duration": "max_length",
    "static": "max_length",
    "off": "longest",
    "dynamic": "longest",
    "bucket": "buckets",
    "bucketed": "buckets",
}


class DataSection(_Section):
    """Where the audio and transcripts come from and how the text is normalised."""

    source: DataSource = "hub"
    """``hub``: a datasets-library dataset (works offline from the local HF cache); ``manifest``: CSV or
    JSON-lines files of audio path + text; ``audiofolder``: one folder per split with a metadata.csv;
    ``librispeech``: the original LibriSpeech tree (<split>/<speaker>/<chapter>/*.flac + .trans.txt);
    ``commonvoice``: a Mozilla Common Voice release as downloaded (<locale>/clips/*.mp3 + <split>.tsv)."""
    dataset_name: Optional[str] = None
    """Hub dataset name (source ``hub``), e.g. ``librispeech_asr``."""
    dataset_config_name: Optional[str] = None
    """Hub dataset configuration, e.g. ``clean``; with source ``commonvoice``, the locale folder of a
    release folder (``de``, ``sw``, ``ja``...)."""
    dataset_dir: Optional[str] = None
    """Local data folder: the LibriSpeech root, the audiofolder root, the folder holding manifests, a
    Common Voice release or locale folder, or the ``data_dir`` handed to a hub loader. Relative paths
    are taken from the preset file's folder."""
    audio_dir: Optional[str] = None
    """Where relative audio paths start (sources ``manifest`` and ``commonvoice``): by default a
    manifest's own folder and a Common Voice locale's ``clips/``. Relative to the preset file's folder."""
    min_up_votes: Optional[int] = Field(None, ge=0)
    """Source ``commonvoice``: leave out clips with fewer up-votes than this."""
    max_down_votes: Optional[int] = Field(None, ge=0)
    """Source ``commonvoice``: leave out clips with more down-votes than this."""
    train_split_name: str = "train+validation"
    """Training split(s); join several with ``+`` (e.g. ``train-clean-100+train-clean-360``)."""
    eval_split_name: str = "test"
    """Evaluation split(s); join several with ``+``."""
    audio_column_name: str = "audio"
    """Column holding the audio (a path, or a datasets Audio value)."""
    text_column_name: str = "text"
    """Column holding the transcript."""
    chars_to_ignore: Optional[list[str]] = None
    """Characters removed from transcripts, taken literally (never as a regex range): ``-`` and ``'``
    are kept unless listed. A single string is split into its characters."""
    do_lower_case: bool = True
    """Lower-case transcripts before building the vocabulary (``str.lower``: German ``ß`` stays ``ß``);
    false keeps the case (scripts without case, or a model whose vocabulary is upper case)."""
    turkic_casing: bool = False
    """Lower-case the Turkish/Azerbaijani way: ``I`` -> dotless ``ı`` (``İ`` -> ``i`` always)."""
    unicode_normalization: Literal["NFC", "NFKC"] = "NFC"
    """Unicode form transcripts are put in before anything else: ``NFC`` (composed: ``a`` + combining
    diaeresis becomes ``ä``) or ``NFKC`` (also folds compatibility forms: full-width ``Ａ`` -> ``A``,
    ``ﬁ`` -> ``fi``)."""
    remove_punctuation: bool = False
    """Also remove every Unicode punctuation character (``„ “ ” « » ‹ › ‘ ’ … – — ¿ ¡ 、 。 ，`` and the
    ASCII ones) except those in keep_punctuation: the usual choice for non-English text."""
    keep_punctuation: str = "'-"
    """Punctuation that remove_punctuation keeps (apostrophes and hyphens are parts of words)."""
    char_map: dict[str, str] = Field(default_factory=dict)
    """Characters replaced before removal, e.g. ``{"ß": "ss", "’": "'"}`` (keys are single characters;
    with do_lower_case both sides are lower-cased)."""
    rare_char_threshold: int = Field(3, ge=1)
    """A character seen fewer times than this in the training text is rare: flagged by ``ctc-tui check``
    and the wizard, and its clips dropped with drop_rare_char_clips."""
    drop_rare_char_clips: bool = False
    """Drop the training clips whose (normalised) transcript holds a rare character."""
    space_separated: Optional[bool] = None
    """Whether words are separated by spaces; unset: detected from the transcripts (false for Chinese,
    Japanese, Thai, ...). When false, CER is the primary metric and the word delimiter token is only in
    the vocabulary if the text has spaces."""
    eval_metrics: list[Literal["wer", "cer"]] = Field(default_factory=lambda: ["wer", "cer"])
    """Metrics computed at evaluation."""
    max_duration_in_seconds: float = Field(20.0, gt=0)
    """Drop clips longer than this."""
    min_duration_in_seconds: float = Field(0.0, ge=0)
    """Drop clips shorter than this."""
    max_train_samples: Optional[int] = Field(None, ge=1)
    """Use at most this many training clips (debugging, quick runs)."""
    max_eval_samples: Optional[int] = Field(None, ge=1)
    """Use at most this many evaluation clips."""
    preprocessing_num_workers: Optional[int] = Field(None, ge=1)
    """Processes used to decode and featurise audio."""
    preprocessing_only: bool = False
    """Stop after preprocessing (fills the cache for a later distributed run)."""
    overwrite_cache: bool = False
    """Redo preprocessing even when a cached result exists."""
    unk_token: str = "[UNK]"
    """Unknown-character token of the built vocabulary."""
    pad_token: str = "[PAD]"
    """Padding token, also the CTC blank."""
    word_delimiter_token: str = "|"
    """Token that stands for a space."""
    phoneme_language: Optional[str] = None
    """Phonemizer language, for phoneme-level CTC models only."""
    padding: Padding = "auto"
    """How batches are padded; ``auto`` is ``buckets`` on HPU and with training.torch_compile, ``longest``
    elsewhere. ``longest``: to the
    batch's longest clip (least padding, but a new shape almost every batch, which HPU graphs must record
    again); ``max_length``: every batch to max_duration_in_seconds (the reference's HPU behaviour: one
    shape, about a third of LibriSpeech's frames are padding); ``buckets``: to the nearest of num_buckets
    lengths chosen from the training clips' lengths, each batch drawn within one bucket (few shapes,
    little padding; replaces training.group_by_length)."""
    num_buckets: int = Field(8, ge=1, le=64)
    """With padding ``buckets``: the most bucket lengths, i.e. the most batch shapes (HPU graphs) in
    training. More buckets, less padding."""
    max_batch_seconds: Optional[float] = Field(None, gt=0)
    """Size each training batch by audio duration instead of a count of clips (NeMo/Lhotse
    ``batch_duration``, icefall ``--max-duration``): at most this many seconds of padded audio per card
    per step; replaces training.per_device_train_batch_size in training. Batches are drawn within
    num_buckets length buckets, each bucket with its own batch size (the longest clips in small batches,
    the short ones in large ones), so HPU graphs still see at most num_buckets shapes; every rank takes
    the same number of steps."""
    speed_perturb: Optional[list[float]] = None
    """Speed perturbation of the training clips, applied on the fly: each clip, each epoch, is played at
    one of these factors (e.g. ``[0.9, 1.0, 1.1]``, the icefall/SpeechBrain habit), chosen from the seed,
    the epoch and the clip (the same whatever the ranks and workers). 1.1 shortens a clip by a tenth;
    buckets and max_batch_seconds count the perturbed lengths. Needs a raw-waveform model (wav2vec2
    style); null = off."""

    @field_validator("chars_to_ignore", mode="before")
    @classmethod
    def _split_chars(cls, value: Any) -> Any:
        if isinstance(value, str):
            return list(value)
        return value

    @field_validator("chars_to_ignore")
    @classmethod
    def _normalise_chars(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        if value is None:
            return None
        seen: list[str] = []
        for entry in value:
            for ch in entry:
                if ch != " " and ch not in seen:
                    seen.append(ch)
        return seen

    @field_validator("char_map")
    @classmethod
    def _single_char_keys(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if len(unicodedata.normalize("NFC", k)) != 1]
        if bad:
            raise ValueError(f"char_map keys must be single characters, got {', '.join(map(repr, bad))}")
        return value

    @field_validator("padding", mode="before")
    @classmethod
    def _padding_choice(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in PADDING_CHOICES:
            hint = PADDING_SYNONYMS.get(value.strip().lower())
            if hint is None:
                close = difflib.get_close_matches(value.strip().lower(), PADDING_CHOICES, n=1, cutoff=0.5)
                hint = close[0] if close else None
            choices = ", ".join(f"'{c}'" for c in PADDING_CHOICES)
            raise ValueError(
                f"expected one of {choices}, got {_describe_input(value)}"
                + (f"; did you mean '{hint}'?" if hint else "")
            )
        return value

    @field_validator("speed_perturb")
    @classmethod
    def _speed_factors(cls, value: Optional[list[float]]) -> Optional[list[float]]:
        if value is None:
            return None
        if not value:
            raise ValueError("give at least one factor, e.g. [0.9, 1.0, 1.1] (or null for none)")
        bad = [f for f in value if not 0.5 <= f <= 2.0]
        if bad:
            raise ValueError(f"speed factors must lie between 0.5 and 2.0, got {bad[0]!r}")
        return sorted(set(float(f) for f in value))

    @field_validator("train_split_name", "eval_split_name")
    @classmethod
    def _splits_not_blank(cls, value: str) -> str:
        if not value.strip() or any(not part.strip() for part in value.split("+")):
            raise ValueError("split names must be non-empty (join several with '+')")
        return value

    @model_validator(mode="after")
    def _source_needs(self) -> "DataSection":
        if self.source == "hub" and not self.dataset_name:
            raise ValueError("source 'hub' needs data.dataset_name (e.g. librispeech_asr)")
        # Every source but the hub reads files under dataset_dir (its module says local = True).
        if self.source != "hub" and not self.dataset_dir:
            raise ValueError(f"source '{self.source}' needs data.dataset_dir (the folder holding the data)")
        if self.min_duration_in_seconds >= self.max_duration_in_seconds:
            raise ValueError("min_duration_in_seconds must be smaller than max_duration_in_seconds")
        if self.audio_dir and self.source not in ("manifest", "commonvoice"):
            raise ValueError(
                f"audio_dir is read by the sources manifest and commonvoice, not '{self.source}': remove it"
            )
        if self.source != "commonvoice" and (self.min_up_votes, self.max_down_votes) != (None, None):
            raise ValueError("min_up_votes and max_down_votes filter source 'commonvoice' only: remove them")
        return self


class TrainingFields(_Section):
    """The (Gaudi)TrainingArguments that a CTC fine-tune uses, under their own names."""

    output_dir: str = "runs/{preset}-{timestamp}"
    """The run directory. ``{preset}`` and ``{timestamp}`` are filled in at launch, so a rerun never
    lands on an earlier run."""
    overwrite_output_dir: bool = False
    """Train from scratch into an existing non-empty output_dir (otherwise that is refused)."""
    do_train: bool = True
    """Run training."""
    do_eval: bool = True
    """Run evaluation (WER/CER) at the end and at every eval step."""
    num_train_epochs: float = Field(3.0, gt=0)
    """Epochs to train (ignored when max_steps is set)."""
    max_steps: int = -1
    """Stop after this many optimiser steps; -1 = use num_train_epochs."""
    per_device_train_batch_size: int = Field(8, ge=1)
    """Training clips per card per step."""
    per_device_eval_batch_size: int = Field(8, ge=1)
    """Evaluation clips per card per step."""
    gradient_accumulation_steps: int = Field(1, ge=1)
    """Micro-batches accumulated per optimiser step."""
    learning_rate: float = Field(5e-5, gt=0)
    """Peak learning rate."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW weight decay."""
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    """AdamW beta1."""
    adam_beta2: float = Field(0.999, ge=0, lt=1)
    """AdamW beta2."""
    max_grad_norm: float = Field(1.0, ge=0)
    """Gradient clipping norm (0 disables)."""
    lr_scheduler_type: Literal[
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "constant",
        "constant_with_warmup",
        "inverse_sqrt",
        "reduce_lr_on_plateau",
    ] = "linear"
    """Learning-rate schedule after warm-up."""
    warmup_steps: int = Field(0, ge=0)
    """Linear warm-up steps."""
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    """Warm-up as a fraction of all steps (used when warmup_steps is 0)."""
    seed: int = 42
    """Random seed for model init, data order and masking."""
    logging_steps: int = Field(10, ge=1)
    """Optimiser steps between step events (loss, samples/s)."""
    eval_strategy: Literal["no", "steps", "epoch"] = "no"
    """When to evaluate during training (a final evaluation runs whenever do_eval is true)."""
    eval_steps: Optional[int] = Field(None, ge=1)
    """Steps between evaluations with eval_strategy ``steps``."""
    save_strategy: Literal["no", "steps", "epoch"] = "steps"
    """When to write checkpoints."""
    save_steps: int = Field(500, ge=1)
    """Steps between checkpoints with save_strategy ``steps``."""
    save_total_limit: Optional[int] = Field(2, ge=1)
    """Keep at most this many checkpoints (older ones are rotated out)."""
    group_by_length: bool = True
    """Batch clips of similar length together: far less padding than random batches."""
    dataloader_num_workers: int = Field(0, ge=0)
    """Data-loader worker processes per card."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory."""
    bf16: bool = False
    """bfloat16 mixed precision (HPU autocast, CUDA/CPU AMP)."""
    fp16: bool = False
    """float16 mixed precision (CUDA only)."""
    use_cpu: bool = False
    """Train on the CPU even where a GPU is present."""
    throughput_warmup_steps: int = Field(0, ge=0)
    """Steps left out of samples/s (graph compilation and warm-up)."""
    report_to: list[str] = Field(default_factory=list)
    """Extra Trainer integrations (tensorboard, wandb, ...); ctc-tui's own events are always on."""
    metric_for_best_model: Optional[Literal["wer", "cer", "loss"]] = None
    """The evaluation figure that picks the best checkpoint (kept by save_total_limit's rotation,
    reloaded by load_best_model_at_end); unset: the primary metric, CER for scripts written without
    spaces (data.space_separated), else WER. Lower is better for all three."""
    load_best_model_at_end: bool = False
    """Load the best checkpoint (by metric_for_best_model) when training ends; needs eval_strategy equal
    to save_strategy."""

    @field_validator("eval_strategy", "save_strategy", mode="before")
    @classmethod
    def _yaml_no(cls, value: Any) -> Any:
        return "no" if value is False else value  # YAML reads an unquoted `no` as false

    @model_validator(mode="after")
    def _consistent(self) -> "TrainingFields":
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError("max_steps must be a positive number of steps, or -1 to use num_train_epochs")
        if self.bf16 and self.fp16:
            raise ValueError("choose one of bf16 and fp16")
        if self.eval_strategy == "steps" and self.eval_steps is None:
            raise ValueError("eval_strategy 'steps' needs eval_steps")
        if self.load_best_model_at_end and (
            self.eval_strategy == "no" or self.eval_strategy != self.save_strategy
        ):
            raise ValueError(
                "load_best_model_at_end needs eval_strategy and save_strategy to be the same (steps or epoch)"
            )
        return self


class GaudiFields(_Section):
    """Intel Gaudi (HPU) settings; ignored unless use_habana is true."""

    use_habana: bool = False
    """Train on HPUs with optimum-habana's GaudiTrainer."""
    use_lazy_mode: bool = True
    """Lazy graph mode (PT_HPU_LAZY_MODE=1; Intel calls it legacy). false = eager mode
    (PT_HPU_LAZY_MODE=0 for every rank), with training.torch_compile true and
    training.torch_compile_backend ``hpu_backend``: eager + torch.compile, Intel's default path now."""
    gaudi_config_name: Optional[str] = "Habana/wav2vec2"
    """GaudiConfig to load (hub id or local JSON/dir); ``Habana/wav2vec2`` turns on fused AdamW, fused
    clipping and autocast. When it cannot be loaded offline, its known values are used."""
    use_hpu_graphs_for_training: bool = False
    """Capture training steps as HPU graphs (needs few batch shapes: see data.padding)."""
    use_hpu_graphs_for_inference: bool = False
    """Capture evaluation forward passes as HPU graphs."""
    sdp_on_bf16: bool = False
    """Allow scaled-dot-product attention in bf16."""
    pipelining_fwd_bwd: bool = False
    """Overlap the forward pass of one micro-batch with the backward of the previous (HPU)."""


Launcher = Literal[LAUNCHERS]  # type: ignore[valid-type]  (one tuple: ctc_tui.core.names)


class LaunchSection(_Section):
    """How the ranks are started."""

    launcher: Launcher = "single"
    """``single`` (one process), ``torchrun``, ``mpi`` (mpirun, as gaudi_spawn --use_mpi) or
    ``deepspeed`` (the DeepSpeed launcher, as gaudi_spawn --use_deepspeed)."""
    world_size: int = Field(1, ge=1, le=4096)
    """Number of cards (ranks) per node."""
    hostfile: Optional[str] = None
    """Hostfile for several nodes (lines ``host slots=N``)."""
    master_addr: str = "localhost"
    """Address of rank 0 (the hostfile's first host when a hostfile is given)."""
    master_port: Optional[int] = Field(None, ge=1, le=65535)
    """Rendezvous port. Unset: on one node, a port free at launch (two runs on one node never meet at
    the same port); with a hostfile, 29500; in a batch job, the scheduler's choice."""
    log_host: Optional[str] = None
    """With a hostfile: the address of this machine that ranks on other hosts send their events to
    (default ``$CTC_TUI_LOG_HOST``, else this machine's address on the route to the hostfile's hosts)."""
    log_bind: Optional[str] = None
    """With a hostfile: the local address the supervisor listens on for the ranks' events (default
    ``$CTC_TUI_LOG_BIND``, else the address ranks are given, ``log_host``: never all interfaces unless
    asked, e.g. ``0.0.0.0`` behind NAT)."""
    deepspeed: Optional[str] = None
    """DeepSpeed config JSON (e.g. ZeRO-2), passed to the trainer as TrainingArguments.deepspeed."""
    stop_grace_seconds: float = Field(120.0, ge=1, le=86400)
    """How long a graceful stop (``ctc-tui stop``, the dashboard's s) waits for the ranks to save their
    checkpoint and exit before it ends whatever is left (SIGCONT + SIGTERM, then SIGKILL a few seconds
    later), as a batch scheduler's kill wait does; raise it when saving a checkpoint takes longer."""

    @field_validator("master_addr", "log_host")
    @classmethod
    def _is_host(cls, value: Optional[str]) -> Optional[str]:
        return value if value is None else check_host(value)

    @model_validator(mode="after")
    def _single_is_one(self) -> "LaunchSection":
        if self.launcher == "single" and self.world_size != 1 and self.hostfile is None:
            raise ValueError(
                f"launcher 'single' runs one process but world_size is {self.world_size}: "
                "use launcher mpi, deepspeed or torchrun"
            )
        return self


#: Leaf names the sections above type by hand; every other trainer argument passes through.
_TYPED = {
    n for m in (ModelSection, DataSection, TrainingFields, GaudiFields, LaunchSection) for n in m.model_fields
}


class TrainingSection(with_trainer_arguments(TrainingFields, "training", _TYPED)):  # type: ignore[misc]
    """The TrainingArguments fields above, and every other field of transformers' TrainingArguments
    as a pass-through leaf (None until set: the trainer's default applies)."""


class GaudiSection(with_trainer_arguments(GaudiFields, "gaudi", _TYPED)):  # type: ignore[misc]
    """The Gaudi fields above, and every other field that only GaudiTrainingArguments has (the
    torch.compile family, distribution_strategy, max_hpu_graphs, profiling_*, ...) as a pass-through leaf."""


class Preset(_Section):
    """A complete, reproducible description of one fine-tuning run."""

    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=lambda: DataSection(dataset_name="librispeech_asr"))
    training: TrainingSection = Field(default_factory=TrainingSection)
    gaudi: GaudiSection = Field(default_factory=GaudiSection)
    launch: LaunchSection = Field(default_factory=LaunchSection)

    @model_validator(mode="after")
    def _cross_section(self) -> "Preset":
        if self.gaudi.use_habana and self.training.use_cpu:
            raise ValueError("gaudi.use_habana and training.use_cpu contradict each other: pick one device")
        if not (self.training.do_train or self.training.do_eval or self.data.preprocessing_only):
            raise ValueError(
                "nothing to do: set training.do_train or training.do_eval (or data.preprocessing_only)"
            )
        if self.gaudi.use_habana and self.training.fp16:
            raise ValueError("HPUs train in bf16, not fp16: set training.bf16 instead")
        return self

    # -- convenience -------------------------------------------------------------------------------
    @property
    def device_kind(self) -> Literal["hpu", "cuda-or-cpu", "cpu"]:
        if self.gaudi.use_habana:
            return "hpu"
        return "cpu" if self.training.use_cpu else "cuda-or-cpu"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self, header: str | None = None) -> str:
        body = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        if header:
            lines = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
            return lines + body
        return body


# ---------------------------------------------------------------------------------------------------
# Loading and validation with all problems at once


def _section_fields() -> dict[str, type[BaseModel]]:
    return {name: info.annotation for name, info in Preset.model_fields.items()}  # type: ignore[misc]


def known_keys() -> list[str]:
    """Every dotted leaf key a preset may set."""
    keys = []
    for section, model in _section_fields().items():
        keys.extend(f"{section}.{name}" for name in model.model_fields)
    return keys


#: Keys that moved, with what to write instead.
MOVED_KEYS = {
    "gaudi.static_shapes": "data.padding (max_duration -> max_length, buckets -> buckets, off -> longest)",
}


def _did_you_mean(section: str | None, name: str) -> str:
    """A hint for an unknown key: where it moved, the nearest key in its section, else anywhere."""
    if f"{section}.{name}" in MOVED_KEYS:
        return f"; it is now {MOVED_KEYS[f'{section}.{name}']}"
    if name in OWNED:
        return f"; ctc-tui sets {name} itself: {OWNED[name]}"
    sections = _section_fields()
    if section is None:
        close = difflib.get_close_matches(name, list(sections), n=1, cutoff=0.6)
        if close:
            return f"; did you mean '{close[0]}'?"
        # A leaf written at the top level: tell which section it belongs in.
        for sec, model in sections.items():
            if name in model.model_fields:
                return f"; it belongs in a section: '{sec}.{name}'"
        return f"; sections are {', '.join(sections)}"
    if section in sections:
        local = difflib.get_close_matches(name, list(sections[section].model_fields), n=1, cutoff=0.6)
        if local:
            return f"; did you mean '{section}.{local[0]}'?"
    # Perhaps the key exists in another section.
    for sec, model in sections.items():
        if name in model.model_fields:
            return f"; did you mean '{sec}.{name}'?"
    everywhere = difflib.get_close_matches(name, [k.split(".", 1)[1] for k in known_keys()], n=1, cutoff=0.75)
    if everywhere:
        full = next(k for k in known_keys() if k.endswith("." + everywhere[0]))
        return f"; did you mean '{full}'?"
    return ""


def _describe_input(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _literal_problem(expected: str, value: Any, got: str) -> str:
    """The choices, or for a long list (TrainingArguments.optim has 40) the nearest few."""
    choices = re.findall(r"'([^']*)'", expected)
    if len(choices) <= 8:
        return f"expected one of {expected}, got {got}"
    close = difflib.get_close_matches(str(value), choices, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"expected one of {len(choices)} choices ({', '.join(choices[:4])}, ...), got {got}{hint}"


def _friendly(error: dict[str, Any]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _describe_input(error.get("input"))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing required key"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("string_type",):
        return f"expected text, got {got}"
    if kind in ("list_type",):
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping of keys, got {got}"
    if kind == "literal_error":
        return _literal_problem(str(ctx.get("expected", "")), error.get("input"), got)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[
            kind
        ]
        limit = next(iter(ctx.values()), "")
        return f"must be {bound} {limit}, got {got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    return f"{error['msg']}, got {got}"


def _validation_problems(
    exc: ValidationError, doc: YamlDocument | None, overrides: dict[tuple, str]
) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = _field_path(error["loc"])
        key = ".".join(loc)
        message = _friendly(error)
        if error["type"] == "extra_forbidden":
            message += _did_you_mean(loc[0] if len(loc) > 1 else None, loc[-1])
        origin = None
        line = None
        for path, text in overrides.items():
            if loc[: len(path)] == path:
                origin = text
                break
        if origin is None and doc is not None:
            line = doc.line_of(loc)
        problems.append(Problem(key=key, message=message, line=line, origin=origin))
    # Stable, readable order: by line, then key.
    problems.sort(key=lambda p: (p.line or 10**9, p.key))
    return problems


def _field_path(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The user-facing part of a pydantic error location: section, key, then a dict key or list index.

    Pydantic appends union-member tags (``bool``, ``list[int]``, ``literal['a']``) that mean nothing to
    someone editing YAML; they are dropped here.
    """
    parts = [str(p) for p in loc[:2]]
    if len(loc) > 2 and loc[1] == "config_overrides":
        parts.append(str(loc[2]))
    elif len(loc) > 2 and isinstance(loc[2], int):
        parts.append(str(loc[2]))
    return tuple(parts)


_OVERRIDE = re.compile(r"^(?P<key>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)+)=(?P<value>.*)$", re.S)


_YAML11_WORDS = frozenset({"no", "yes", "on", "off", "y", "n"})


def parse_overrides(items: list[str]) -> tuple[dict[tuple[str, ...], Any], list[Problem]]:
    """Parse ``section.key=value`` overrides; values are read as YAML scalars/flow values."""
    parsed: dict[tuple[str, ...], Any] = {}
    problems: list[Problem] = []
    for item in items:
        match = _OVERRIDE.match(item)
        if not match:
            problems.append(
                Problem(
                    key="",
                    origin=item,
                    message=(
                        f"cannot read override {item!r}: "
                        "write it as section.key=value, e.g. training.max_steps=60"
                    ),
                )
            )
            continue
        path = tuple(match["key"].split("."))
        text = match["value"]
        if text.strip().lower() in _YAML11_WORDS:
            parsed[path] = text.strip()  # `save_strategy=no` means the word; bool fields accept it too
            continue
        try:
            parsed[path] = parse_scalar(text)
        except YamlError as exc:
            if text.lstrip().startswith(("[", "{")):
                problems.append(Problem(key=match["key"], origin=item, message=f"cannot read value: {exc}"))
            else:
                parsed[path] = text  # not YAML: the plain text, e.g. data.chars_to_ignore=,.!;:"
    return parsed, problems


def _apply(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def validate_data(
    data: Any, source: str, doc: YamlDocument | None = None, overrides: list[str] | None = None
) -> Preset:
    """Validate a parsed preset mapping (plus overrides); raise PresetError with every problem."""
    parsed, problems = parse_overrides(overrides or [])
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        kind = {"list": "a list", "str": "a string", "int": "a number", "float": "a number"}.get(kind, kind)
        raise PresetError(
            source,
            [
                Problem(
                    key="",
                    line=1,
                    message=(
                        "a preset is a mapping of sections (model:, data:, training:, gaudi:, launch:), "
                        f"not {kind}"
                    ),
                )
            ],
        )
    data = _deep_copy(data)
    origin_of: dict[tuple, str] = {}
    for path, value in parsed.items():
        _apply(data, path, value)
        origin_of[path] = ".".join(path) + "=" + _describe_input(value)
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, doc, origin_of))
        raise PresetError(source, problems) from None
    problems.extend(_refusals(preset, doc, origin_of))
    if problems:
        raise PresetError(source, problems)
    return preset


def _refusals(preset: Preset, doc: YamlDocument | None, origin_of: dict[tuple, str]) -> list[Problem]:
    """What GaudiTrainingArguments would refuse at start (ctc_tui.core.gaudi_rules), as problems."""
    from ctc_tui.core.gaudi_rules import refusals

    out = []
    for key, message in refusals(preset):
        path = tuple(key.split("."))
        origin = origin_of.get(path)
        line = doc.line_of(path) if doc is not None and origin is None else None
        out.append(Problem(key=key, message=message, line=line, origin=origin))
    return out


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def load_preset(path: str | Path, overrides: list[str] | None = None) -> Preset:
    """Read, parse and validate a preset file. Raises PresetError (never a traceback-worthy error)."""
    path = Path(path)
    doc = read_document(path)
    preset = validate_data(doc.data, str(path), doc, overrides)
    return resolve_relative_paths(preset, path.resolve().parent)


def resolve_relative_paths(preset: Preset, base: Path) -> Preset:
    """Make local paths that are relative to the preset file absolute (output_dir stays cwd-relative)."""
    updated = preset.model_copy(deep=True)
    data = updated.data
    for attr in ("dataset_dir", "audio_dir"):
        value = getattr(data, attr)
        if value and not Path(value).expanduser().is_absolute():
            setattr(data, attr, str((base / value).resolve()))
    model = updated.model
    for attr in ("model_name_or_path", "tokenizer_name_or_path"):
        setattr(model, attr, local_model_path(getattr(model, attr), base))
    launch = updated.launch
    for attr in ("hostfile", "deepspeed"):
        value = getattr(launch, attr)
        if value and not Path(value).is_absolute() and (base / value).exists():
            setattr(launch, attr, str((base / value).resolve()))
    return updated


def apply_overrides(preset: Preset, overrides: list[str], source: str = "overrides") -> Preset:
    """Return a new preset with dotted overrides applied and re-validated."""
    return validate_data(preset.to_dict(), source, None, overrides)


def json_schema() -> dict[str, Any]:
    schema = Preset.model_json_schema()
    for section, model in _section_fields().items():
        for name, prop in schema["$defs"][model.__name__]["properties"].items():
            if field_doc(f"{section}.{name}"):
                prop["description"] = field_doc(f"{section}.{name}")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ctc-tui preset"
    return schema


def preset_stem(path: str | Path | None) -> str:
    """A short name for a preset file (``presets/demo-cpu.yaml`` -> ``demo-cpu``)."""
    if not path:
        return "run"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(path).stem) or "run"


def has_placeholders(output_dir: str) -> bool:
    return "{" in output_dir and "}" in output_dir


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def fill_placeholders(template: str, values: dict[str, str]) -> str:
    """``{name}`` -> ``values[name]``, ``{{`` and ``}}`` -> a literal brace. Nothing else: no attribute
    or index lookups and no format specs (``str.format`` would evaluate ``{preset.__class__}`` or pad
    ``{timestamp:>999999999}``). Raises ValueError naming what it does not know."""

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is None:
            raise ValueError(f"a lone {token!r} (write {token * 2} for a literal brace)")
        if name not in values:
            raise ValueError(f"unknown placeholder {{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(one, template)


def fill_output_dir(preset: Preset, name: str, now: float | None = None) -> Preset:
    """Fill ``{preset}`` and ``{timestamp}`` in training.output_dir and make it absolute, its symbolic
    links kept (what the trust rules walk: ctc_tui.core.trust)."""
    import time as _time

    stamp = _time.strftime("%Y%m%d-%H%M%S", _time.localtime(now))
    template = preset.training.output_dir
    try:
        filled = fill_placeholders(template, {"preset": name, "timestamp": stamp})
    except ValueError as exc:
        raise PresetError(
            "training.output_dir",
            [
                Problem(
                    key="training.output_dir",
                    message=(
                        f"bad placeholder in {template!r} ({exc}); "
                        "only {preset} and {timestamp} are known"
                    ),
                )
            ],
        ) from None
    resolved = preset.model_copy(deep=True)
    resolved.training.output_dir = os.path.abspath(Path(filled).expanduser())
    return resolved


def resolve_output_dir(preset: Preset, name: str, now: float | None = None) -> Preset:
    """Fill ``{preset}`` and ``{timestamp}`` in training.output_dir and make it absolute and real."""
    resolved = fill_output_dir(preset, name, now)
    resolved.training.output_dir = str(Path(resolved.training.output_dir).resolve())
    return resolved
