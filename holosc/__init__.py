"""holosc: docker compose for KVM, as a compiler (holos.yaml → systemd units + QEMU)."""

__version__ = "0.1.0"
