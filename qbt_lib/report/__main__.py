"""``python -m qbt_lib.report ...`` (see :mod:`qbt_lib.report.cli`)."""
import sys

from .cli import main

sys.exit(main())
