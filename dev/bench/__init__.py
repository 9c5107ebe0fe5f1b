"""Benchmarks: commands that print a table and write JSON, run against the local stub."""
