"""Tests of the shared transports (pyburnerkit.transports)."""
