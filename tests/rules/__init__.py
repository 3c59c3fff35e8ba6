"""Direct tests of the pure rules (no server, no I/O)."""
