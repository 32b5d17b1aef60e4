"""Ground truth from the real hypervisor: Xen 4.17 (Debian arm64) booted under QEMU."""
