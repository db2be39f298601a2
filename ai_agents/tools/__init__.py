"""Tools: what agents can call, and the text protocol for models without native tools."""
