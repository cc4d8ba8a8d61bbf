"""Shipped presets (installed as ctc_tui.presets). Each YAML file begins with a comment header."""
