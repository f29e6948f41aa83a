"""``python -m questlearn``: the same as the ``questlearn`` command."""

import sys

from ._orphans import die_with_parent_from_environment

die_with_parent_from_environment()  # a child of launch_local ends with its launcher, even before the imports below

from .cli import main  # noqa: E402

sys.exit(main())
