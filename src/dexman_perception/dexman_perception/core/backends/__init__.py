"""Perception backends: the embedded CPU defaults and the foundation-model adapters, one module
each, all imported lazily through `registry`."""
