"""Router: per-user tool-router sessions (Composio, or the local sandbox) and connections."""
