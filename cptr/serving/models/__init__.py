"""Python-backend model code. Each repository ``model.py`` is one import line pointing here.

These modules import ``triton_python_backend_utils``, which only exists inside Triton's Python
backend stub; import them there, not in ordinary processes. The arithmetic lives in
:mod:`cptr.serving.stages`, which imports anywhere.
"""
