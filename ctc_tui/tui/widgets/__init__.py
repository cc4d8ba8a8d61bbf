"""Reusable widgets: preset form rows, a text line plot."""
