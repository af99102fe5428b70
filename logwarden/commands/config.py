"""``logwarden config``: every setting, its default, its current value (secrets masked) and meaning."""

from __future__ import annotations

import argparse
import ast
import inspect
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("config", help="list every LOGWARDEN_* setting with its value and meaning")
    p.add_argument("--markdown", action="store_true", help="print the reference table (defaults only)")
    p.set_defaults(handler=_run)


def field_docs() -> dict[str, str]:
    """Attribute docstrings of the Settings fields, read from the source (one place of truth)."""
    from logwarden import config

    tree = ast.parse(inspect.getsource(config.Settings))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, following in zip(body, [*body[1:], None], strict=True):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
            docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def _shown(value: Any) -> str:
    from pydantic import SecretStr

    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else "unset"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "none"
    return str(value)


def _run(args: argparse.Namespace) -> int:
    from logwarden.config import ENV_PREFIX, Settings, load_settings

    docs = field_docs()
    defaults = Settings.model_construct()
    current = None if args.markdown else load_settings()
    if args.markdown:
        print("| variable | default | meaning |")
        print("|---|---|---|")
    for name, info in Settings.model_fields.items():
        if name == "detector":
            continue
        variable = ENV_PREFIX + name.upper()
        default = _shown(getattr(defaults, name, info.default))
        if name == "data_dir":
            default = "the user's data dir"
        if args.markdown:
            print(f"| `{variable}` | {default} | {docs.get(name, '')} |")
        else:
            print(f"{variable} = {_shown(getattr(current, name))}    # {docs.get(name, '')}")
    if args.markdown:
        print("| `LOGWARDEN_DETECTOR__<FIELD>` | see below | " + docs.get("detector", "") + " |")
    return 0
