"""Small concurrency utilities: pools, futures, stream consumers."""
