"""The wizard's model, without a UI: the preset being edited (``draft``) and the steps that edit it
(``steps``). The Textual wizard (``ctc_tui.tui``) and ``ctc-tui init``'s plain prompts both draw from it;
nothing here imports Textual or the preset model at module level."""
