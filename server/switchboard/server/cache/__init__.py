"""The read cache: contacts and lead state, its backends, cross-process invalidation."""
