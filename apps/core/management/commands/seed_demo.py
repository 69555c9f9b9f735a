"""Idempotent demo data: every app may contribute a `demo.py` with `seed(context) -> None`."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = "Create (or refresh) the demo organisation, its cast and their data. DEBUG only."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo refuses to run when DEBUG is off (production).")
        context: dict[str, Any] = {"logins": []}
        with transaction.atomic():
            for config in apps.get_app_configs():
                if not config.name.startswith("apps."):
                    continue
                module_name = f"{config.name}.demo"
                if importlib.util.find_spec(module_name) is None:
                    continue
                importlib.import_module(module_name).seed(context)
        self.stdout.write(self.style.SUCCESS("Demo data ready. Demo logins:"))
        for login in context["logins"]:
            self.stdout.write(f"  {login['role']:<48} {login['email']:<34} {login['password']}")
        self.stdout.write(
            "Staff sign in with a second factor: `python manage.py demo_otp EMAIL` prints the "
            "current code (demo accounts only)."
        )
