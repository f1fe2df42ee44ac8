"""Load: read holos.yaml (and the files it includes) into a Document with positions."""
