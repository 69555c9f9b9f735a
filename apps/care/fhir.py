"""FHIR R4 mapping of care coordination (CarePlan, Task, Questionnaire, QuestionnaireResponse)."""
