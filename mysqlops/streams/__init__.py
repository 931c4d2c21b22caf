"""Pure byte streams: compression, encryption, checksums, growing files, the dump scanner."""
