"""``msslam simulate``: write a synthetic RGB-D + IR stereo + IMU sequence folder (and its bag)."""
from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``simulate`` verb on an ``argparse`` subparsers object."""
    from ..sim.raycast import RAYCASTERS
    from ..sim.trajectory import MOTIONS, PRESETS

    p = subparsers.add_parser(
        "simulate",
        help="simulate a sequence folder (RGB-D, IR pair, IMU, ground truth)",
        description="Render a synthetic indoor sequence into the folder layout of docs/formats.md.",
    )
    p.add_argument("--output", required=True, help="output folder (created; must be empty or absent)")
    p.add_argument("--seed", type=int, default=1, help="scene, trajectory and noise seed (default 1)")
    p.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    p.add_argument("--width", type=int, default=640, help="image width in pixels (default 640)")
    p.add_argument("--height", type=int, default=480, help="image height in pixels (default 480)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate in Hz (default 30)")
    p.add_argument("--preset", choices=PRESETS, default="handheld", help="camera motion")
    p.add_argument("--motion", choices=MOTIONS, default="smooth",
                   help="motion style: smooth (default) or fast_rotation (short fast shakes about yaw, pitch "
                        "and roll, 1.5-3 rad/s, like TUM fr1_rpy)")
    p.add_argument("--no-person", action="store_true", help="leave the walking person out")
    p.add_argument("--imu-rate", type=float, default=200.0, help="IMU rate in Hz, 200-400 (default 200)")
    p.add_argument("--baseline", type=float, default=0.05, help="IR stereo baseline in meters (default 0.05)")
    p.add_argument("--no-depth-noise", action="store_true", help="write exact depth as the sensor depth")
    p.add_argument("--lighting-variation", type=float, default=0.0,
                   help="amplitude of the global lighting change over time, 0-1 (default 0 = constant)")
    p.add_argument("--texture-contrast", type=float, default=1.0,
                   help="texture contrast of the color images, 0-1 (default 1; low values: low-texture scenes)")
    p.add_argument("--no-bag", action="store_true", help="do not write the rosbag2 copy in OUTPUT/bag")
    p.add_argument("--workers", type=int, default=None, help="frame worker threads (default: min(2, CPUs))")
    p.add_argument("--raycaster", choices=RAYCASTERS, default="auto",
                   help="ray casting: open3d, torch (brute force, CUDA when present) or auto (default: open3d when it "
                        "imports)")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the verb; returns the exit code."""
    from ..sim.simulate import simulate

    simulate(
        args.output,
        seed=args.seed,
        frames=args.frames,
        width=args.width,
        height=args.height,
        fps=args.fps,
        preset=args.preset,
        with_person=not args.no_person,
        imu_rate_hz=args.imu_rate,
        baseline_m=args.baseline,
        depth_noise=not args.no_depth_noise,
        lighting_variation=args.lighting_variation,
        write_bag=not args.no_bag,
        workers=args.workers,
        texture_contrast=args.texture_contrast,
        motion=args.motion,
        raycaster=args.raycaster,
    )
    return 0
