"""The audit trail as FHIR AuditEvent (administrators' and systems' tokens only)."""
