"""The framework's interface layers (base and face)."""
