"""ACT operator control plane: the ACTJob API, the planner, and its executors (no torch here)."""
__version__ = "0.1.0"
