"""grpcio's deprecated beta API, adapted to the grpc API: interfaces,
credentials, channels, channel_ready_future, and beta stubs and servers
(face method implementations served by a grpc.server)."""
