"""ACT data plane: the stage programs that run inside pods (or as local subprocesses)."""
__version__ = "0.1.0"
