"""Tapline's entry point: parse options, build the app, serve.

python run.py [options]            serve (see --help)
python run.py link KIND [options]  print a signed link offline
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import ssl
import sys
import time
from pathlib import Path
from typing import Any

from server.cluster import ClusterMismatch
from server.config import Config
from server.links import STAFF_ROLES


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(config: Config) -> None:
    handler = logging.StreamHandler()
    if config.log_json:
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler])
    for noisy in ("aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="Tapline live video-support server. Every option can also be "
        "set as TAPLINE_<OPTION> in the environment; flags win.",
    )
    add = parser.add_argument
    add("--host", help=f"listen address (default {defaults.host})")
    add("--port", type=int, help=f"listen port (default {defaults.port})")
    add("--data-dir", type=Path, help="recordings, secret, admin key (default ./data)")
    add("--public-url", help="origin links are built on, e.g. https://help.example")
    add("--redis", dest="redis_url", help="shared Redis URL for several nodes")
    add("--ice-host", help="address announced as the server's ICE candidate")
    add(
        "--ice-server",
        dest="ice_servers",
        action="append",
        help="STUN/TURN URL for peers and browsers (repeatable; none by default)",
    )
    add(
        "--turn-url",
        dest="turn_urls",
        action="append",
        help="TURN URL with credentials minted from TAPLINE_TURN_SECRET (repeatable)",
    )
    add("--cert", help="TLS certificate (PEM)")
    add("--key", help="TLS private key (PEM)")
    add(
        "--self-signed",
        action="store_true",
        default=None,
        help="make and keep a self-signed certificate in the data dir",
    )
    add(
        "--no-demo",
        dest="demo",
        action="store_false",
        default=None,
        help="do not open the built-in demo room",
    )
    add(
        "--no-record",
        dest="record",
        action="store_false",
        default=None,
        help="do not record support sessions",
    )
    add(
        "--retention-days",
        type=float,
        help="delete recordings (files, bookmarks, index rows) older than this many "
        "days; 0 keeps them (default 0)",
    )
    add(
        "--library-scan-s",
        type=float,
        help=f"seconds between scans for new recordings (default "
        f"{defaults.library_scan_s:g})",
    )
    add(
        "--max-clip-s",
        type=float,
        help=f"longest clip export, seconds (default {defaults.max_clip_s:g})",
    )
    add(
        "--rejoin-grace-s", type=float, help="seconds a vanished participant may return"
    )
    add("--log-json", action="store_true", default=None, help="JSON log lines")
    add("--log-level", help="DEBUG, INFO, WARNING")
    return parser


def _link_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run.py link", description="Print a signed link, offline."
    )
    parser.add_argument("kind", choices=["direct", "support", "login"])
    parser.add_argument("--technician", help="direct: the technician to reach")
    parser.add_argument("--queue", help="support: the queue to wait in")
    parser.add_argument(
        "--skill",
        action="append",
        default=[],
        help="support: a required skill NAME[=LEVEL]; login: a skill the staff "
        "member has (repeatable)",
    )
    parser.add_argument("--priority", type=int, default=0, help="support: 0-9")
    parser.add_argument(
        "--queues", help="login: comma-separated queues served (default: all)"
    )
    parser.add_argument("--name", help="login: the staff member's name")
    parser.add_argument(
        "--role",
        default="technician",
        choices=sorted(STAFF_ROLES),
        help="login: staff role (trainer and admin open the recordings library)",
    )
    parser.add_argument("--ttl-s", type=int, help="seconds the link stays valid")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--public-url")
    return parser


def _apply(config: Config, args: argparse.Namespace) -> Config:
    names = {f.name for f in dataclasses.fields(Config)}
    changes: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k in names and v is not None
    }
    return config.replace(**changes)


def _print_link(argv: list[str]) -> int:
    from server.app import build_node
    from server.links import Kind

    args = _link_parser().parse_args(argv)
    config = _apply(Config.from_env(), args)
    node = build_node(config)
    skills = {}
    for item in args.skill:
        name, _, level = item.partition("=")
        skills[name] = int(level or 1)
    if args.kind == "direct":
        if not args.technician:
            print("run.py link direct needs --technician NAME", file=sys.stderr)
            return 2
        ttl = args.ttl_s or config.customer_link_ttl_s
        token, grant = node.signer.sign(Kind.DIRECT, ttl, technician=args.technician)
    elif args.kind == "support":
        if args.queue not in config.queues:
            queues = ", ".join(config.queues)
            print(
                f"run.py link support needs --queue, one of: {queues}", file=sys.stderr
            )
            return 2
        ttl = args.ttl_s or config.customer_link_ttl_s
        token, grant = node.signer.sign(
            Kind.SUPPORT,
            ttl,
            queue=args.queue,
            skills=skills or None,
            prio=args.priority or None,
        )
    else:
        if not args.name:
            print("run.py link login needs --name NAME", file=sys.stderr)
            return 2
        ttl = args.ttl_s or config.login_link_ttl_s
        served = [q for q in (args.queues or "").split(",") if q]
        token, grant = node.signer.sign(
            Kind.LOGIN,
            ttl,
            name=args.name,
            role=args.role,
            queues=served or None,
            skills=skills or None,
        )
    print(f"{config.origin}/j/{token}")
    expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(grant.expires_at))
    print(f"id {grant.id}, expires {expires}", file=sys.stderr)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["link"]:
        return _print_link(argv[1:])
    from aiohttp import web

    from server.accesslog import RedactingAccessLogger
    from server.app import NODE, create_app
    from server.rooms import DEMO_ROOM
    from server.tls import server_context
    from server.turn import ice_problems

    config = _apply(Config.from_env(), _parser().parse_args(argv))
    problems = ice_problems(config)
    for problem in problems:
        print(f"Tapline cannot start: {problem}", file=sys.stderr)
    if problems:
        return 2
    _configure_logging(config)
    app = create_app(config)
    node = app[NODE]
    context: ssl.SSLContext | None = server_context(config)

    print(f"Tapline serving on {config.origin}", flush=True)
    print(f"Technician console sign-in (one use): {node.login_url('technician')}")
    if config.demo:
        print(f"Demo room, viewer link: {node.rooms.viewer_url(DEMO_ROOM)}")
        print(
            f"Demo room, studio sign-in (one use): {node.rooms.studio_url(DEMO_ROOM)}"
        )
    if node.admin_key_created:
        print(
            f"Admin API key (shown once, kept in {config.data_dir}/admin.key): "
            f"{node.admin_key}"
        )
    sys.stdout.flush()
    try:
        web.run_app(
            app,
            host=config.host,
            port=config.port,
            ssl_context=context,
            print=None,
            shutdown_timeout=5.0,
            access_log_class=RedactingAccessLogger,
        )
    except ClusterMismatch as exc:
        print(f"Tapline cannot join the cluster: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
