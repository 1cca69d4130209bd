"""agentstream layer: sinks."""
