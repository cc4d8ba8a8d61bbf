"""The app's screens: one module per wizard step group, the dashboard, the runs screen, dialogs."""
