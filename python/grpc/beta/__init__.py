"""grpcio's deprecated beta API.

What can run on grpcgo runs: the interfaces, credentials, channels and
channel_ready_future. Beta stubs and servers (built on the framework's face
layer) are not provided: they raise NotImplementedError naming the grpc API
to use instead.
"""
