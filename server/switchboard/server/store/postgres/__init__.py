"""The PostgreSQL store: the same contract as `sqlite/`, for several replicas on one database."""
