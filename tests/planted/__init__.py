"""Planted worlds for tests: data with a known answer, written independently of the product."""
