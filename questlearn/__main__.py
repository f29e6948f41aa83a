"""``python -m questlearn``: the same as the ``questlearn`` command."""

import sys

from .cli import main

sys.exit(main())
