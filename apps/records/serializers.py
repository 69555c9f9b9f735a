from __future__ import annotations

from rest_framework import serializers

from .models import Observation, Patient


class PatientSerializer(serializers.ModelSerializer[Patient]):
    class Meta:
        model = Patient
        fields = [
            "id",
            "family_name",
            "given_names",
            "birth_date",
            "sex",
            "ahv_number",
            "insurance_card_number",
            "insurer_name",
            "preferred_language",
        ]


class ObservationSerializer(serializers.ModelSerializer[Observation]):
    code = serializers.CharField(source="code.code")
    system = serializers.CharField(source="code.system")
    display = serializers.CharField(source="code.label")

    class Meta:
        model = Observation
        fields = [
            "id",
            "code",
            "system",
            "display",
            "category",
            "value",
            "unit",
            "ref_low",
            "ref_high",
            "interpretation",
            "effective_at",
            "source",
        ]
