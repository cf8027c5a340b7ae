"""Shared helpers for the test suites (simulator process control, ...)."""
