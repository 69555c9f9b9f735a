"""Clinical decision support: rules as data (`rules`, `parameters`), what they read of a patient
(`snapshot`), one evaluator per kind (`evaluators`), the engine that keeps proposals in step with
the findings (`engine`), and the clinicians' decisions (`proposals`)."""
