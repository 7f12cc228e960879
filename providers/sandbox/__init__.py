"""Faithful simulators of the Flooz and T-Money APIs and an SMS gateway, faults included."""
