"""The Debian guest image of the end-to-end tests (see build-guest-image.sh)."""
