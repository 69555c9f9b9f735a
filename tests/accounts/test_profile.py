import pytest

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from tests.conftest import verified_client

pytestmark = pytest.mark.django_db


def test_a_user_saves_their_phone_and_language(patient: User) -> None:
    client = verified_client(patient)

    response = client.post(
        "/accounts/profile/",
        {
            "first_name": "Marie",
            "last_name": "Dubois",
            "phone": "+41 79 123 45 67",
            "preferred_language": "de",
        },
    )

    assert response.status_code == 302
    patient.refresh_from_db()
    assert (patient.phone, patient.preferred_language) == ("+41791234567", "de")
    assert response.cookies["django_language"].value == "de"
    assert AuditEvent.objects.filter(actor_id=patient.pk, action=Action.UPDATE).exists()


def test_a_bad_phone_number_gets_a_clear_error(patient: User) -> None:
    response = verified_client(patient).post(
        "/accounts/profile/",
        {"first_name": "M", "last_name": "D", "phone": "079 123", "preferred_language": "fr"},
    )

    assert response.status_code == 200
    assert "phone" in response.context["form"].errors
    patient.refresh_from_db()
    assert patient.phone == ""
