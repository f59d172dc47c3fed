"""`python -m bench.load`: see bench.load.runner."""

import sys

from bench.load import runner

if __name__ == "__main__":
    sys.exit(runner.main(sys.argv[1:]))
