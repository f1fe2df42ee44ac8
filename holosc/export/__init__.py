"""Exports of a project to other engines than systemd on one host (docs/kubevirt.md)."""
