"""The face interface layer: stubs, multi-callables and servicers."""
