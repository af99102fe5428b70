"""logwarden: the composition root (configuration, database, CLI, service wiring)."""
