"""Server interceptors, each doing one thing; their order is fixed in `app`."""
