"""Recorder adapters of the built-in families, one module each; the family registry
(:mod:`pyburnerkit.families`) names them, and the recorder imports one only when a device of
its family is recorded."""
