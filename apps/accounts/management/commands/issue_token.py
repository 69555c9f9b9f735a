from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.services import AccountError, do_issue_token


class Command(BaseCommand):
    help = "Print a new bearer token for USERNAME (the account's email) for /api/v1/ and /fhir/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="email address of the account")
        parser.add_argument(
            "--scope", action="append", dest="scopes", help="a scope; repeat for several"
        )
        parser.add_argument("--name", default="", help="what the token is for")
        parser.add_argument("--days", type=int, default=None, help="expire after this many days")

    def handle(self, *args: Any, **options: Any) -> None:
        user = User.objects.filter(email__iexact=options["username"]).first()
        if user is None:
            raise CommandError(f"no account with email {options['username']!r}")
        expires_at = None
        if options["days"] is not None:
            if options["days"] < 1:
                raise CommandError("--days must be at least 1")
            expires_at = timezone.now() + timedelta(days=options["days"])
        try:
            secret, _token = do_issue_token(
                user, name=options["name"], scopes=options["scopes"], expires_at=expires_at
            )
        except AccountError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(secret)
