"""Model Context Protocol: MCP servers as tools of an agent, and our agents as an MCP server."""
