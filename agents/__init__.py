"""Agents: triage and the log-anomaly-alert agent that acts through the owner's tool router."""
