"""Durable state behind one interface (`Store`); SQLite is the embedded default."""
