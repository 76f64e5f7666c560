"""The grpcio release whose API this package implements (grpcio keeps its
version here; ``grpc.__version__`` is read from this module).

grpcio 1.85.4's Python code is 1.85.1's but for this string; the
distribution (pyproject.toml) is grpcio 1.85.4+grpcgo.<ours>, so companions
of the 1.85 line find their ``grpcio>=1.85.x`` satisfied.
"""

__version__ = "1.85.4"
