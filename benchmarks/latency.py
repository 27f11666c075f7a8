#!/usr/bin/env python
"""Latency and throughput of every CPTR engine, measured the same way. See ``--help``.

A thin entry point over :mod:`cptr.bench.cli` for a source checkout: results go to
benchmarks/results/ and are recorded in benchmarks/RESULTS.md. (An installed package runs the same
command as ``python -m cptr.bench``, which writes to ./cptr-bench/ instead.)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:  # run from a checkout without installing
        sys.path.insert(0, str(root))
    from cptr.bench.cli import main

    sys.exit(main(checkout=root, prog="python benchmarks/latency.py"))
