"""Agents: decide whether and how to notify, and act through the owner's tool router.

Modules (imports point one way: agents → router.base, agents → detector.models):

- ``policy`` / ``policy_file``: the notification policy (owners, channel targets, severities per
  channel, quiet hours, rate limits) and its validated TOML loader; ``toml_lines`` finds lines.
- ``triage_rules`` / ``triage``: the zero-token rules for obvious cases, and the cheap-model path
  for the ambiguous middle with a rules fallback.
- ``planner``: the deterministic rules planner (verdict → ordered tool calls and skips);
  ``tool_catalog`` holds every tool slug and argument name; ``notification_text`` the wording.
- ``models`` / ``budget``: model tiers, fallback chains, usage limits, and the daily cost budget
  in PostgreSQL.
- ``scenarios``: labelled decision scenarios and a runner that scores any decider.
- ``errors``: the package's exception tree.
"""
