from rest_framework import serializers

from .models import User


class MeSerializer(serializers.ModelSerializer[User]):
    role_label = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "first_name",
            "last_name",
            "role",
            "role_label",
            "preferred_language",
        ]
        read_only_fields = ["id", "email", "role"]
