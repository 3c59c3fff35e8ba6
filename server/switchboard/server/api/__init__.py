"""One thin servicer per proto service: proto in, domain call, proto out."""
