"""Configuration: the validated settings model and its value types, the command-line flags, live reload."""
