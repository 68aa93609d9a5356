"""Command-line flags for where kernels are measured, shared by every command that measures.

``add_runner_arguments(parser)`` adds ``--runner --tracker --device-key
--build-workers --threads`` to a subcommand; ``runner_config_from_args(args)`` turns them
into a :class:`RunnerConfig` that is checked against the tracker before any work
starts. ``chameleon devices`` lists what a tracker knows.
"""

from __future__ import annotations

import argparse
import json

from .measure.types import RUNNER_KINDS, RunnerConfig, parse_tracker


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--runner --tracker --device-key --build-workers --threads`` to a subcommand's parser."""
    group = parser.add_argument_group("where kernels run")
    group.add_argument(
        "--runner", choices=RUNNER_KINDS, default="local",
        help="local: this machine's CPU (default); rpc: the devices of --device-key at a TVM RPC --tracker",
    )  # fmt: skip
    group.add_argument("--tracker", metavar="HOST:PORT", help="TVM RPC tracker (with --runner rpc)")
    group.add_argument("--device-key", metavar="KEY", help="key the devices registered under (rpc_server --key)")
    group.add_argument("--build-workers", type=int, metavar="N", help="parallel compiler processes here (default: one per core)")
    group.add_argument(
        "--threads", type=int, metavar="N",
        help="threads per kernel (default: every physical core); fewer pins the runner to the N least busy cores",
    )  # fmt: skip


def runner_config_from_args(args: argparse.Namespace) -> RunnerConfig:
    """The flags as a config; ``UsageError`` (one line) for bad flags, a tracker that does not
    answer, or a key without devices."""
    from .api import UsageError, check_runner

    try:
        config = RunnerConfig(args.runner, args.tracker, args.device_key, args.build_workers, threads=args.threads)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_runner(config)
    return config


def add_devices_command(commands) -> None:
    """``chameleon devices``: on the subparsers object of the top-level parser."""
    devices = commands.add_parser("devices", help="list the devices a TVM RPC tracker knows, and which are free")
    devices.add_argument("--tracker", required=True, metavar="HOST:PORT", help="the TVM RPC tracker")
    devices.add_argument("--json", action="store_true", help="print one JSON object")


def devices(args: argparse.Namespace) -> int:
    """Print the tracker's keys (devices, free, pending requests) and each device's address."""
    from .api import UsageError
    from .measure.rpc_runner import TrackerError, devices_by_key, tracker_summary

    try:
        summary = tracker_summary(parse_tracker(args.tracker))
    except (ValueError, TrackerError) as exc:
        raise UsageError(str(exc)) from None
    keys = devices_by_key(summary)
    servers = sorted(
        ({"key": s["key"].split(":", 1)[1], "address": f"{s['addr'][0]}:{s['addr'][1]}"} for s in summary["server_info"]),
        key=lambda d: (d["key"], d["address"]),
    )
    if args.json:
        print(json.dumps({"tracker": args.tracker, "keys": keys, "devices": servers}))
        return 0
    width = max([len("key"), *map(len, keys)])
    print(f"{'key':<{width}}  {'devices':>7}  {'free':>4}  {'pending':>7}")
    for key, n in sorted(keys.items()):
        print(f"{key:<{width}}  {n['total']:>7}  {n['free']:>4}  {n['pending']:>7}")
    for server in servers:
        print(f"device {server['address']:<21}  key {server['key']}")
    return 0
