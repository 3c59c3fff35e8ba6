"""The SQLite store: schema, transactions, the outbox and the group-commit writer."""
