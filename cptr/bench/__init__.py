"""Latency and throughput benchmarks of every CPTR engine (``python benchmarks/latency.py`` in a
source checkout, ``python -m cptr.bench`` from an installed package).

Modules: :mod:`~cptr.bench.workloads` (what is measured), :mod:`~cptr.bench.targets` (the engines),
:mod:`~cptr.bench.measure` (the timing loop), :mod:`~cptr.bench.stats`, :mod:`~cptr.bench.report`
(terminal, JSON, Markdown, PNG, comparisons), :mod:`~cptr.bench.machine` and :mod:`~cptr.bench.cli`.
"""
