"""agentstream layer: analytics."""
