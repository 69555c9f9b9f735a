"""Admin of care coordination: tasks."""
