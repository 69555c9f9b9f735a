"""Admin of care coordination: followup."""
