"""Argument vectors of the client tools, as plain data (one runner executes them)."""
