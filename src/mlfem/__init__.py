"""mlfem: placeholder during bootstrap."""
__version__ = "0.1.0"
