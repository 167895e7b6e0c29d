"""ci_golden: golden-value regression tests for GPU model training in CI."""

__version__ = "0.1.0"
