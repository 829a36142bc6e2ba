"""Benchmarks of motcua against real infrastructure; figures in bench/README.md."""
