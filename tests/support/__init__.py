"""Test helpers that are not fixtures of one module: a throwaway Slurm cluster."""
