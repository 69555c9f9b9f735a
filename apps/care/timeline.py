"""Care coordination entries of the patient timeline."""
