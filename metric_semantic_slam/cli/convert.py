"""``msslam convert INPUT OUTPUT_BAG``: any readable sequence (TUM/simulator/dataset folder, bag) -> a bag."""
from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``convert`` verb."""
    p = subparsers.add_parser(
        "convert",
        help="convert a TUM/simulator/dataset folder or a bag into a rosbag2 (mcap/sqlite3) or ROS 1 bag",
        description="Write INPUT (any folder or bag `msslam reconstruct` reads) as a bag with the "
        "RealSense-like topics of docs/formats.md.",
    )
    p.add_argument("input", help="input folder or bag")
    p.add_argument("output", help="output bag: a new folder for rosbag2, a .bag file for ROS 1")
    p.add_argument("--storage", choices=("mcap", "sqlite3", "ros1"), default=None,
                   help="bag storage (default: ros1 when OUTPUT ends with .bag, else mcap)")
    p.add_argument("--max-frames", type=int, default=None, help="convert only the first N frames")
    p.add_argument("--stride", type=int, default=1, help="keep every N-th frame")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT when it exists")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Convert; prints the bag path. Returns 0 on success, 1 on bad input (message on stderr)."""
    from ..io.bag import sequence_to_bag
    from ..io.sequence import open_sequence

    storage = args.storage or ("ros1" if str(args.output).endswith(".bag") else "mcap")
    try:
        seq = open_sequence(args.input, max_frames=args.max_frames, stride=args.stride)
        out = sequence_to_bag(seq, args.output, storage=storage, overwrite=args.overwrite)
    except ValueError as exc:
        print(f"msslam convert: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(seq)} frames of {seq.name} to {out} ({storage})")
    return 0
