"""ROS 2 node `panoptic_node` — NOT IMPLEMENTED YET (the node suite is issue #7).

The executable exists so the package layout, entry points and launch files can be checked; running
it exits with an error instead of pretending to work.
"""
from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    sys.stderr.write("panoptic_node: not implemented yet (the ROS node suite is tracked in issue #7); "
                     "use 'msslam reconstruct' for the offline pipeline.\n")
    return 1


if __name__ == "__main__":
    sys.exit(main())
