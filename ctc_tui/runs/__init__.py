"""Everything about runs on the login node: starting and stopping them (``service``), talking to a
run's supervisor (``client``), finding run dirs (``discovery``), folding events into a run's state
(``state``), what deserves attention (``alerts``), the headless view (``headless``) and the number
formats shared by it and the TUI (``fmt``).

Nothing is imported here: each caller imports the module it needs, so that ``fmt`` or ``state`` never
pull in psutil, rich or the preset model.
"""
