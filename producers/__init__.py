"""agentstream layer: producers."""
