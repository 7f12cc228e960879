"""Sika's foundation: settings, database, embedded PostgreSQL, logging, errors and crypto.

Nothing here imports another Sika package, and nothing connects at import time.
"""
