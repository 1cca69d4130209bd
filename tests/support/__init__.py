"""Test support: real services (testcontainers or the local ones) and helpers around them."""
