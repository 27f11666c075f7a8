"""``python -m cptr.bench``: the benchmark command of an installed package (results in ./cptr-bench/)."""

import sys

from cptr.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
