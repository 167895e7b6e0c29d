"""A job on its runner: the runner check, launching the trainer, collecting its metrics."""
