"""Training code for inpaint-studio: one shared loop, per-model tasks, the train CLI."""
