"""Tools beside the pipeline: image pulls, PCI devices, doctor, import from libvirt."""
