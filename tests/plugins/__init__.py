"""Stand-alone distributions used by tests to prove Sika's plug-in points (not test modules)."""
