"""ACT operator control plane: the ACTJob API, the planner, and its executors (no torch here).

The Python API: `from act_operator import ACTJob, ACTClient, LocalBackendConfig` (see client.py);
imported on first use, so that `import act_operator.<module>` stays light."""
__version__ = "0.1.0"

_EXPORTS = {
    "ACTJob": "act_operator.api", "ACTJobSpec": "act_operator.api", "SpecError": "act_operator.api",
    "ACTClient": "act_operator.client", "ACTJobNotFound": "act_operator.client",
    "KubernetesBackendConfig": "act_operator.client", "LocalBackendConfig": "act_operator.client",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'act_operator' has no attribute {name!r}")
