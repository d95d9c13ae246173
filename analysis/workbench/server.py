"""Start the workbench: checks, a warning for a non-local bind, then uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path

from analysis.core.atomic import check_out_dir
from analysis.core.config import DEFAULT_CONFIG, load_config
from analysis.core.errors import ConfigError
from analysis.workbench.security import is_loopback

MAX_PORT = 65535


def serve(host: str = "127.0.0.1", port: int = 8765, config: Path | None = None,
          sessions: Path = Path("sessions"), results: Path = Path("results"), quiet: bool = False) -> None:
    """Serve the workbench on ``host:port`` for ``config`` until interrupted."""
    import uvicorn

    from analysis.workbench.app import Settings, create_app

    if not 0 < port <= MAX_PORT:
        raise ConfigError(f"--port {port}: must be between 1 and {MAX_PORT}")
    config = Path(config) if config is not None else DEFAULT_CONFIG
    load_config(config)  # a bad config is an error now, not on the first page
    for root, flag in ((sessions, "--sessions-dir"), (results, "--results-dir")):
        check_out_dir(root, flag)
    if not is_loopback(host):
        print(f"warning: serving on {host}, not a local address: anyone who can reach this host and port can "
              "edit the definitions and start jobs. Prefer 127.0.0.1 with an SSH tunnel.", file=sys.stderr)  # fmt: skip
    settings = Settings(config=config.resolve(), sessions=sessions.resolve(), results=results.resolve(), host=host, port=port)
    if not quiet:
        shown = f"[{host}]" if ":" in host else host
        print(f"dijetscan workbench on http://{shown}:{port}/ (config {config}); Ctrl-C stops it", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", server_header=False,
                proxy_headers=False, limit_concurrency=64)  # fmt: skip
