"""Reusable widgets: preset form rows, a text line plot, the small modal dialogs every screen may open."""
