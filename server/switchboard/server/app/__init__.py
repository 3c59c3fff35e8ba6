"""Composition root: build the server from settings, start it, stop it."""
