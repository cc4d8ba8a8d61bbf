"""The app's screens: one module per wizard step group, the dashboard, the runs screen. They never import
one another: the app moves between them on their messages (``ctc_tui.tui.messages``) and results."""
