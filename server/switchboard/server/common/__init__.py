"""Small shared helpers with no project dependencies: ids, time, signing, scope names."""
