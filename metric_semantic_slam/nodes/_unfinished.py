"""Entry point for node executables that are not implemented yet (the ROS node suite is issue #7).

The executables exist so the package layout, entry points and launch files can be checked; running
one exits with an error instead of pretending to work.
"""
from __future__ import annotations

import sys
from typing import Callable

__all__ = ["unfinished_main"]


def unfinished_main(executable: str) -> Callable[[list[str] | None], int]:
    """A ``main()`` that explains the node is not implemented and returns exit code 1."""

    def main(argv: list[str] | None = None) -> int:
        sys.stderr.write(f"{executable}: not implemented yet (the ROS node suite is tracked in issue #7); "
                         "use 'msslam reconstruct' for the offline pipeline.\n")
        return 1

    return main
