"""The FHIR R4 (4.0.1) REST API under /fhir/: the HTTP layer over the apps' `fhir` mappings."""
