"""The process model: the event loop, the supervisor and its worker processes."""
