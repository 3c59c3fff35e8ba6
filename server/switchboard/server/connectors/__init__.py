"""Connector adapters: the contract, the registry, and one module per adapter."""
