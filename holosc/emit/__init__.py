"""Emit: write the compiler's output into the output directory, atomically."""
