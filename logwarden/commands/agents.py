"""``logwarden policy check|show`` and ``logwarden agents eval|audit``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from logwarden.config import load_settings


def register(sub: Any) -> None:
    policy = sub.add_parser("policy", help="the notification policy: check a file, show a service's policy")
    policy_sub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = policy_sub.add_parser("check", help="validate a policy file (default: LOGWARDEN_POLICY_FILE)")
    check.add_argument("file", nargs="?", type=Path, help="policy file (TOML)")
    check.set_defaults(handler=_check)
    show = policy_sub.add_parser("show", help="the resolved policy for one project and service")
    show.add_argument("project")
    show.add_argument("service")
    show.set_defaults(handler=_show)

    agents = sub.add_parser("agents", help="agent decisions: evaluate deciders on labelled scenarios")
    agents_sub = agents.add_subparsers(dest="agents_command", metavar="ACTION", required=True)
    evaluate = agents_sub.add_parser(
        "eval",
        help="score triage + planner on scenario files; uses LOGWARDEN_AGENT_FAST_MODEL for the "
        "ambiguous cases when set (no budget accounting), else the rules",
    )
    evaluate.add_argument("path", type=Path, help="a scenario .toml file or a directory of them")
    evaluate.set_defaults(handler=_eval)
    audit = agents_sub.add_parser(
        "audit", help="what was sent for an incident (deliveries) and why (one decision per job attempt)"
    )
    audit.add_argument("incident", type=int, help="incident id")
    audit.set_defaults(handler=_audit)


def _check(args: argparse.Namespace) -> int:
    from agents.errors import PolicyError
    from agents.policy_file import load_policy
    from logwarden.agent_setup import load_agent_policy

    if args.file is not None:
        try:
            policy = load_policy(args.file)
        except PolicyError as exc:
            print(exc)
            return 2
    else:
        policy = load_agent_policy(load_settings())
    print(f"{policy.source}: valid ({len(policy.rules)} policy entries)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from agents.policy import CHANNEL_ORDER
    from logwarden.agent_setup import load_agent_policy

    resolved = load_agent_policy(load_settings()).for_service(args.project, args.service)
    print(f"{resolved.project}/{resolved.service}: owner {resolved.owner} ({resolved.timezone.key})")
    print(f"  from: {' < '.join(resolved.matched)}")
    for channel in CHANNEL_ORDER:
        c = resolved.channel(channel)
        severities = ", ".join(sorted(s.label for s in c.severities)) or "none"
        state = "on" if c.enabled else "off"
        limit = f"{c.rate_limit.max} per {c.rate_limit.window}" if c.rate_limit else "no limit"
        print(f"  {channel.value:<9} {state:<3} {c.target.describe():<20} severities: {severities}; {limit}")
    quiet = resolved.quiet_hours
    if quiet is None:
        print("  quiet hours: none")
    else:
        muted = ", ".join(sorted(c.value for c in quiet.channels))
        print(f"  quiet hours: {quiet.start:%H:%M}-{quiet.end:%H:%M} (mutes warnings on {muted})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    return asyncio.run(_run_eval(args.path))


async def _run_eval(path: Path) -> int:
    from agents.scenarios import evaluate as run
    from agents.scenarios import load_scenarios, rules_decider, triage_model_decider
    from agents.triage import TriageModel
    from logwarden.agent_setup import model_router

    settings = load_settings()
    cases = load_scenarios(path)
    router = model_router(settings, None)
    if router.configured:
        report = await run(
            cases, triage_model_decider(TriageModel(router)), label=f"{settings.agent_fast_model}"
        )
    else:
        report = await run(cases, rules_decider, label="rules")
    return 0 if report.failures == () else 1


def _audit(args: argparse.Namespace) -> int:
    return asyncio.run(_run_audit(args.incident))


async def _run_audit(incident_id: int) -> int:
    import sys

    from agents.audit import AuditLog
    from agents.deliveries import DeliveryStore
    from logwarden import db

    settings = load_settings()
    try:
        pool = await db.create_pool(db.resolve_database(settings), settings)
    except db.DatabaseUnavailable as exc:
        print(f"logwarden: {exc}", file=sys.stderr)
        return 1
    try:
        deliveries = await DeliveryStore(pool).for_incident(incident_id)
        decisions = await AuditLog(pool).for_incident(incident_id)
    finally:
        await pool.close()
    if not deliveries and not decisions:
        print(f"incident {incident_id}: nothing recorded")
        return 1
    print(f"incident {incident_id}: {len(deliveries)} deliveries, {len(decisions)} decisions")
    for r in deliveries:
        via = f" (for {r.fallback_for.value})" if r.fallback_for is not None else ""
        ref = r.external_ref or "-"
        print(f"  {r.key:<48} {r.status:<8} {r.tool_slug} -> {r.target or '-'}{via} ref {ref} [{r.path}]")
        if r.error:
            print(f"      error: {r.error}")
    for row in decisions:
        d = row.decision
        models = ", ".join(d.models) or "no model"
        print(
            f"  job {d.job_id} ({d.job_kind.value}) attempt {d.attempt}: {d.outcome.value} by {d.path.value} "
            f"[{models}] {d.latency_ms:.0f} ms, {d.input_tokens}+{d.output_tokens} tokens, ${d.cost_usd}"
        )
        for call in d.tool_calls:
            print(f"      {call.get('tool')}: {call.get('verdict')} -> {call.get('status')}")
        if d.fallbacks:
            print(f"      fallbacks: {', '.join(d.fallbacks)}")
        if d.connect_links:
            for toolkit, link in d.connect_links.items():
                print(f"      connect {toolkit}: {link}")
        if d.error:
            print(f"      error: {d.error}")
    return 0
