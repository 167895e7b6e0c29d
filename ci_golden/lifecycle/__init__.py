"""Maintaining goldens over time: refresh from results, calibrate tolerances."""
