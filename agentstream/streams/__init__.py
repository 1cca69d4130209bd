"""agentstream layer: streams."""
