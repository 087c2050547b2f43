"""ROS 2 node `mapper_node`: NOT IMPLEMENTED YET (the node suite is issue #7)."""
from ._unfinished import unfinished_main

__all__ = ["main"]

main = unfinished_main("mapper_node")
