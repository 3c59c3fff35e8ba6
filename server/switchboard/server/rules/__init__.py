"""Pure functions, no I/O: scoring, contact and lead rules, validation, paging, payloads."""
