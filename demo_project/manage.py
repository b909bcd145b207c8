#!/usr/bin/env python
"""Django's command-line utility for the Telegraphy demo."""

import os
import sys
from pathlib import Path

# Run from a checkout: import this repository's telegraphy package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
