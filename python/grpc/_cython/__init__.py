"""grpcio keeps its Cython core here; grpcgo keeps the names of it that
programs import (cygrpc)."""
