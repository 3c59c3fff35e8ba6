"""Authentication (API keys, JWT bearer tokens) and the caller identity it establishes."""
