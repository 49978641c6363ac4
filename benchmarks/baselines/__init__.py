"""Baselines for ``benchmarks/bench_fit.py``: the original's PyTorch L-BFGS fitter and SciPy fitters.

``problems`` builds the shared benchmark problems (static m=3 law, Chinchilla), their init grids and the
float64 reference objective that scores every method. Submodules are imported explicitly
(``from baselines import torch_lbfgs``) so that a process that does not need torch never loads it (the
benchmark measures each side's memory separately).
"""
