"""``python -m questlearn.cli``: the same as the ``questlearn`` command."""

import sys

from . import main

if __name__ == "__main__":  # importing this module (a walk over the package's modules) runs nothing
    sys.exit(main())
