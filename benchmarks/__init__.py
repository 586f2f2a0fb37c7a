"""Benchmarks of ai-lib-sync against the floor (raw requests) and its peers; see README.md."""
