"""Use-cases: pure rules plus the code that combines store, cache and dispatcher."""
