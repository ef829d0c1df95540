"""Models the project ships (built from code, never downloaded) and ``builtin://`` resolution."""
