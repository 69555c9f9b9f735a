"""Admin of care coordination: plans."""
