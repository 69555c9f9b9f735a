"""Demo organisation and cast (see README.md for the logins)."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import Organization, Role, User

DEMO_PASSWORD = "demo-hopital-2026"  # noqa: S105 - documented demo login, DEBUG only
DEMO_DOMAIN = "demo.hopital.test"

CAST = [
    ("patient", Role.PATIENT, "", "Marie", "Dubois"),
    ("patient2", Role.PATIENT, "", "Luca", "Bernasconi"),
    ("physician", Role.PHYSICIAN, "", "Jean", "Favre"),
    ("nurse", Role.NURSE, "", "Sophie", "Meier"),
    ("physio", Role.ALLIED, "Physiothérapeute", "Noah", "Keller"),
    ("coordinator", Role.COORDINATOR, "", "Camille", "Rochat"),
    ("billing", Role.BILLING, "", "Thomas", "Schneider"),
    ("admin", Role.ADMIN, "", "Anna", "Weber"),
]


def demo_email(handle: str) -> str:
    return f"{handle}@{DEMO_DOMAIN}"


def seed(context: dict[str, Any]) -> None:
    organization, _created = Organization.objects.update_or_create(
        gln="7601000000001",
        defaults={
            "name": "Hôpital virtuel du Léman",
            "address": "Rue du Lac 1, 1003 Lausanne",
            "phone": "+41 21 000 00 00",
            "email": f"contact@{DEMO_DOMAIN}",
        },
    )
    context["organization"] = organization
    users = {}
    for handle, role, profession, first_name, last_name in CAST:
        user, created = User.objects.update_or_create(
            email=demo_email(handle),
            defaults={
                "role": role,
                "profession": profession,
                "first_name": first_name,
                "last_name": last_name,
                "organization": organization if role != Role.PATIENT else None,
                "is_active": True,
                "is_superuser": role == Role.ADMIN,
            },
        )
        if created or not user.has_usable_password():
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        EmailAddress.objects.update_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
        if user.is_staff_member and not TOTPDevice.objects.filter(user=user, confirmed=True):
            TOTPDevice.objects.create(user=user, name="demo authenticator", confirmed=True)
        users[handle] = user
        label = str(Role(role).label) + (f" ({profession})" if profession else "")
        context["logins"].append({"role": label, "email": user.email, "password": DEMO_PASSWORD})
    context["users"] = users
