"""The compute-node half of ctc-tui: what every rank runs (``python -m ctc_tui.runner PRESET``).

It loads a preset, prepares the audio and text, builds the CTC model and trains it with
``transformers.Trainer`` (CPU, CUDA) or optimum-habana's ``GaudiTrainer`` (HPU), reporting events to
the supervisor's log socket. Heavy imports (torch, transformers, datasets) happen inside functions so
that ``--help`` and error paths stay fast.
"""
