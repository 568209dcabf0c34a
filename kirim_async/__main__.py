"""``python -m kirim_async``: the ``kirim-labels`` command."""

import sys

from .cli import main

sys.exit(main())
