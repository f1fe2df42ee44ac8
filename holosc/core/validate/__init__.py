"""Validate: holos.yaml's shape (JSON schema), then its meaning, into one frozen Project."""
