"""The models ctc-tui can build from a config (``model.architecture``) and the seed's default model.

Shared by the preset schema (the allowed names), the wizard (the choices) and the runner (the
shapes it builds): one list.
"""

from __future__ import annotations

from typing import Any

#: The seed's model, the default ``model.model_name_or_path``.
DEFAULT_MODEL = "facebook/wav2vec2-large-lv60"

# Small wav2vec2 shapes for CPU demos. The feature encoder keeps the usual total stride of 320
# (20 ms frames at 16 kHz) with three convolutions instead of seven.
SHAPES: dict[str, dict[str, Any]] = {
    "wav2vec2-tiny": dict(
        conv_dim=(64, 64, 64),
        conv_kernel=(10, 8, 8),
        conv_stride=(5, 8, 8),
        conv_bias=True,
        feat_extract_norm="layer",
        hidden_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=256,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        do_stable_layer_norm=True,
        feat_quantizer_dropout=0.0,
        apply_spec_augment=True,
    ),
    "wav2vec2-small": dict(
        conv_dim=(128, 128, 128, 128),
        conv_kernel=(10, 4, 4, 4),
        conv_stride=(5, 4, 4, 4),
        conv_bias=True,
        feat_extract_norm="layer",
        hidden_size=256,
        num_hidden_layers=6,
        num_attention_heads=4,
        intermediate_size=1024,
        num_conv_pos_embeddings=32,
        num_conv_pos_embedding_groups=8,
        do_stable_layer_norm=True,
    ),
}

#: The names ``model.architecture`` accepts.
ARCHITECTURES = tuple(SHAPES)
