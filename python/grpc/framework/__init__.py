"""grpcio's older "framework" layer: the foundation utilities and the
interface modules that grpc.beta, grpcio-testing and old generated code
import. Pure Python; nothing here touches the engine."""
