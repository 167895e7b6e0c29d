"""Results of many jobs aggregated into one report, and its renderers."""
