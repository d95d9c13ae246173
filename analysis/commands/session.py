"""Save, load, list and delete sessions: snapshots of the analysis config and the signal,
background and wavelet definitions.

  session save NAME [--config F] [--force]   snapshot the config and its definition files
  session load NAME [--into DIR]             validate and restore them (default: configs/)
  session list                               the saved sessions
  session delete NAME                        remove a session

Names are letters, digits, '-' and '_'. Sessions live in --sessions-dir (default: sessions/).
Loading validates like any config and never executes content.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis.core.config import DEFAULT_CONFIG
from analysis.core.errors import ConfigError

NAME = "session"
HELP = "save, load, list or delete snapshots of configs and toy definitions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("save", "load", "list", "delete"), help="what to do")
    parser.add_argument("name", nargs="?", help="session name (not for 'list')")
    parser.add_argument("--sessions-dir", type=Path, default=Path("sessions"), help="where sessions live")
    parser.add_argument("--config", type=Path, default=None, help="config to snapshot (save; default: configs/default.yaml)")
    parser.add_argument("--into", type=Path, default=DEFAULT_CONFIG.parent, help="directory to restore into (load)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing session (save)")


def main(args: argparse.Namespace) -> int:
    from analysis.core import sessions

    if args.action == "list":
        found = sessions.list_sessions(args.sessions_dir)
        for item in found:
            print(f"{item['name']}\t{item['created']}")
        if not found and not args.quiet:
            print(f"no sessions in {args.sessions_dir}")
        return 0
    if args.name is None:
        raise ConfigError(f"session {args.action}: a NAME is required")
    if args.action == "save":
        path = sessions.save(args.sessions_dir, args.name, args.config, force=args.force)
        message = f"saved session '{args.name}' in {path}"
    elif args.action == "load":
        written = sessions.load(args.sessions_dir, args.name, args.into)
        message = f"loaded session '{args.name}': " + ", ".join(str(p) for p in written)
    else:
        sessions.delete(args.sessions_dir, args.name)
        message = f"deleted session '{args.name}'"
    if not args.quiet:
        print(message)
    return 0
