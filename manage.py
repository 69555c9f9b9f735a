#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "virtualhospital.settings")
    from django.core.management import execute_from_command_line

    from apps.core.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:
        sys.stderr.write(f"Configuration error: {error}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
