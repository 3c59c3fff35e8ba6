"""Switchboard server."""
