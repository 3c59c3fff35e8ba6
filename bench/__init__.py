"""`make bench`: Switchboard against baselines (a bare grpc.aio echo server, REST/JSON)."""
