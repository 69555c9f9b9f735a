"""Admin of care coordination: support."""
