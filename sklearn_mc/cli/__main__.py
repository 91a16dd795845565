"""``python -m sklearn_mc.cli``: the same as the ``sklearn-mc`` command."""

import sys

from . import main

if __name__ == "__main__":  # not when imported, e.g. by pytest --doctest-modules
    sys.exit(main())
