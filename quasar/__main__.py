"""``python -m quasar ...``: the same as the ``quasar`` command."""

import sys

from quasar.cli import main

sys.exit(main())
