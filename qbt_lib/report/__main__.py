"""``python -m qbt_lib.report ...`` (see :mod:`qbt_lib.report.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
