"""Settings: one frozen, typed object read once from the defaults, a file and the environment."""
