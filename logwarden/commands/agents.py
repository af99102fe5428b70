"""``logwarden policy check|show`` and ``logwarden agents eval``."""

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
