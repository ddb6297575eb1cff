"""Third-party trained models shipped with the package, each under its own licence (NOTICE.md, LICENSE here)."""
