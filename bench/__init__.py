"""Sika's benchmarks against the limits of issue 7: each module registers one benchmark
(`bench._common.register`) and `python -m bench` finds it; results go to bench/results/.
"""
