"""The corpus catalog: named reference corpora, resolved from a cache folder or downloaded with sha256 checks."""
