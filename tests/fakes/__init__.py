"""Local fake servers speaking the LLM vendors' real wire formats (for tests and benches)."""
