"""Support for development only, shared by tests/ and benchmarks/: never part of the product."""
