"""The project: its config, JSON Schemas, YAML reading, paths and git changes."""
