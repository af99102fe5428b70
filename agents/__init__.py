"""Agents: decide whether and how to notify, and act through the owner's tool router.

Modules (imports point one way: agents → router (``router.base``, ``router.context_cost``), agents →
detector (``detector.models``; the worker also consumes ``detector.outbox``/``detector.incidents``)):

- ``policy`` / ``policy_file``: the notification policy (owners, channel targets, severities per
  channel, quiet hours, rate limits) and its validated TOML loader; ``toml_lines`` finds lines.
- ``triage_rules`` / ``triage``: the zero-token rules for obvious cases, and the cheap-model path
  for the ambiguous middle with a rules fallback.
- ``planner``: the deterministic rules planner (verdict → ordered tool calls and skips);
  ``tool_catalog`` holds every tool slug and argument name; ``notification_text`` the wording.
- ``models`` / ``budget``: model tiers, fallback chains, usage limits, and the daily cost budget
  in PostgreSQL.
- ``scenarios``: labelled decision scenarios and a runner that scores any decider.
- ``worker`` / ``job_handler`` / ``job_run``: lease outbox jobs; per job decide, act, classify and
  record (``job_run`` holds the pure classification and the page floor).
- ``guard_rules`` / ``guard`` / ``guard_calls`` / ``guarded_toolset``: the guard around every tool
  call (pure verdict; reservations in ``deliveries``; results shown to models; the pydantic-ai
  wrapper of the owner's MCP toolset).
- ``executor`` / ``router_session``: the rules executor and its MCP client session.
- ``log_anomaly_alert``: the acting pydantic-ai agent.
- ``deliveries`` / ``audit`` / ``redact``: the deliveries and decisions tables, and secret masking.
- ``errors``: the package's exception tree.
"""
