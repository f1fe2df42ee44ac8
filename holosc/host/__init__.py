"""The host side: install the output into systemd and run it (up, down, ps, logs, keys)."""
