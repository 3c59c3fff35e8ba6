"""The outbox worker: delivers run steps to connectors and records their outcomes."""
