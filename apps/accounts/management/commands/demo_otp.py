import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.demo import DEMO_DOMAIN


class Command(BaseCommand):
    help = "Print the current two-factor code of a demo account (DEBUG and demo accounts only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")

    def handle(self, *args: Any, **options: Any) -> None:
        email = options["email"].lower()
        if not settings.DEBUG or not email.endswith("@" + DEMO_DOMAIN):
            raise CommandError("only for demo accounts, with DEBUG on")
        device = TOTPDevice.objects.filter(user__email=email, confirmed=True).first()
        if device is None:
            raise CommandError(f"{email} has no authenticator; run seed_demo first")
        code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
        remaining = device.step - int(time.time() - device.t0) % device.step
        self.stdout.write(f"{code:0{device.digits}d}  (valid {remaining} s more)")
