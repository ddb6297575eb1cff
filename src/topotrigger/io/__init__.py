"""Small, shared file-system helpers: atomic writes and JSON manifests."""
