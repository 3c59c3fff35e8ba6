"""Switchboard client."""
