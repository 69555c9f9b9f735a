from rest_framework import generics

from .models import User
from .serializers import MeSerializer


class MeView(generics.RetrieveUpdateAPIView[User]):
    """The signed-in account (or the token's owner)."""

    serializer_class = MeSerializer

    def get_object(self) -> User:
        return self.request.user  # type: ignore[return-value]
