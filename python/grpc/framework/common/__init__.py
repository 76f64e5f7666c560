"""Enumerations shared by the framework interfaces."""
