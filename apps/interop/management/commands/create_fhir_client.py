"""Create a FHIR backend client (OAuth2 client credentials) or reset its secret."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import Organization
from apps.interop.fhir_api.oauth import do_create_fhir_client, do_reset_client_secret
from apps.interop.models import FhirClient


class Command(BaseCommand):
    help = (
        "Create a backend client of the FHIR API and print its client id and secret (shown "
        "once) as JSON. With --reset-secret, give an existing client (by name) a new secret."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The client's name, e.g. 'HIS Lausanne'.")
        parser.add_argument(
            "--scope",
            action="append",
            default=[],
            help="A SMART system scope it may be granted (repeatable), e.g. system/*.rs.",
        )
        parser.add_argument("--organization", help="GLN of the organisation it belongs to.")
        parser.add_argument(
            "--reset-secret",
            action="store_true",
            help="Issue a new secret for the existing client of that name.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name:
            raise CommandError("Give the client a name.")
        clients = FhirClient.objects.select_related("application").filter(application__name=name)
        if options["reset_secret"]:
            client = clients.first()
            if client is None:
                raise CommandError(f"No FHIR client named {name!r}.")
            secret = do_reset_client_secret(client)
        else:
            if clients.exists():
                raise CommandError(
                    f"A FHIR client named {name!r} exists; use --reset-secret for a new secret."
                )
            organization = None
            if options["organization"]:
                organization = Organization.objects.filter(gln=options["organization"]).first()
                if organization is None:
                    raise CommandError(f"No organisation with GLN {options['organization']!r}.")
            scopes = " ".join(options["scope"]) or "system/*.rs"
            try:
                client, secret = do_create_fhir_client(name, scopes, organization=organization)
            except ValueError as error:
                raise CommandError(str(error)) from None
        self.stdout.write(
            json.dumps(
                {
                    "name": name,
                    "client_id": client.application.client_id,
                    "client_secret": secret,
                    "scopes": client.allowed_scopes,
                    "token_url": "/o/token/",
                }
            )
        )
