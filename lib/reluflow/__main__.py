"""``python -m reluflow``: the same command line as the ``reluflow`` console script."""

import sys

from reluflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
