"""Sika's benchmarks against their targets (README.md, "Performance"): each module registers
one benchmark (`bench._common.register`) and `python -m bench` finds it; results go to
bench/results/.
"""
