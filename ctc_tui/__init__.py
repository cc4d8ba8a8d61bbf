"""ctc-tui: fine-tune CTC speech models on Intel Gaudi, CUDA or CPU from a reproducible preset.

This package is the login-node half. It never imports torch, transformers or datasets.
"""

__version__ = "0.1.0"
