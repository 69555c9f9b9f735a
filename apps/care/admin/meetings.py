"""Admin of care coordination: meetings."""
