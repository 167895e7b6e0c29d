"""Actual values against goldens under policies: the engine, the policies and the result model."""
