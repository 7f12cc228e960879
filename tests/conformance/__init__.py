"""Conformance of Sika's operator wire with the public client code integrators use."""
