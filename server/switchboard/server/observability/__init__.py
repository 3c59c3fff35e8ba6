"""Logs, traces and metrics: setup and the masking of personal data."""
