"""A trained model's output directory as an MLflow model, without a second copy of the weights.

MLflow's transformers flavour loads the weights from `<model dir>/<model_binary>` and each
component from `<model dir>/components/<name>`. `mlflow.transformers.save_model` copies the
checkpoint into `model/`; here the flavour's `model_binary` is `.`, so the HF checkpoint the
stage saved (what eval and the next stage read) is the model MLflow loads, and only the
MLmodel file, the environment files and the tokenizer's copy under `components/tokenizer`
are added (kilobytes to a few MB: no weights). The flavour config holds the keys of MLflow's
`build_flavor_config_from_local_checkpoint` (which MLflow 3.17 cannot run under transformers 5:
it reads the pipeline class from a registry entry that is now a dotted string).

Loads as `mlflow.transformers.load_model(uri)` (a text-generation pipeline, or
`return_type="components"`: model and tokenizer) and as `mlflow.pyfunc.load_model(uri)`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger("act_trainer.mlmodel")

TASK = "text-generation"
MLMODEL = "MLmodel"
# what the pyfunc flavour's environment needs beyond MLflow (its pins are of the packages this stage ran)
DEFAULT_MAX_NEW_TOKENS = 64
REQUIREMENTS = ("transformers", "torch", "accelerate", "tokenizers", "safetensors")


def write(model_dir: Path, source: str) -> list[str]:
    """Write the MLmodel file (transformers + python_function flavours) and what it names into
    `model_dir`, a saved Hugging Face model with its tokenizer; `source` (the directory's URI in
    storage) is recorded as the model's name. Returns the paths written, relative to model_dir."""
    import mlflow
    import transformers
    import yaml
    from mlflow import pyfunc
    from mlflow.models import Model, ModelSignature
    from mlflow.transformers.flavor_config import FlavorKey
    from mlflow.transformers.model_io import _COMPONENTS_BINARY_DIR_NAME
    from mlflow.transformers.signature import infer_or_get_default_signature
    from mlflow.types.schema import ParamSchema, ParamSpec
    from mlflow.utils.environment import (
        _CONDA_ENV_FILE_NAME,
        _PYTHON_ENV_FILE_NAME,
        _REQUIREMENTS_FILE_NAME,
        _mlflow_conda_env,
        _PythonEnv,
    )
    from mlflow.utils.requirements_utils import _get_pinned_requirement
    from transformers import AutoConfig, AutoTokenizer

    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    flavor = {
        FlavorKey.TASK: TASK, FlavorKey.INSTANCE_TYPE: "TextGenerationPipeline",
        FlavorKey.MODEL_TYPE: AutoConfig.from_pretrained(model_dir).architectures[0],
        FlavorKey.MODEL_NAME: source,
        FlavorKey.MODEL_BINARY: ".",  # the weights are the checkpoint's own files
        FlavorKey.COMPONENT_TYPE.format(FlavorKey.TOKENIZER): type(tokenizer).__name__,
        FlavorKey.COMPONENTS: [FlavorKey.TOKENIZER],
    }
    tokenizer_dir = model_dir / _COMPONENTS_BINARY_DIR_NAME / FlavorKey.TOKENIZER
    tokenizer.save_pretrained(tokenizer_dir)

    default = infer_or_get_default_signature(_Task(TASK))  # MLflow's own for the task: string in, string out
    # plus the generation length at predict time: pyfunc drops params its signature does not name
    signature = ModelSignature(default.inputs, default.outputs,
                               ParamSchema([ParamSpec("max_new_tokens", "long", DEFAULT_MAX_NEW_TOKENS)]))
    model = Model(signature=signature)
    model.add_flavor("transformers", transformers_version=transformers.__version__, code=None, **flavor)
    pyfunc.add_to_model(model, loader_module="mlflow.transformers", conda_env=_CONDA_ENV_FILE_NAME,
                        python_env=_PYTHON_ENV_FILE_NAME)
    # pinned to what this stage ran (MLflow's own _process_pip_requirements also compares them with
    # the installed packages, seconds of work that says nothing new here)
    pip_requirements = [f"mlflow=={mlflow.__version__}", *sorted(_get_pinned_requirement(p) for p in REQUIREMENTS)]
    conda_env = _mlflow_conda_env(additional_pip_deps=pip_requirements, install_mlflow=False)
    (model_dir / _CONDA_ENV_FILE_NAME).write_text(yaml.safe_dump(conda_env, default_flow_style=False))
    (model_dir / _REQUIREMENTS_FILE_NAME).write_text("\n".join(pip_requirements) + "\n")
    _PythonEnv.current().to_yaml(str(model_dir / _PYTHON_ENV_FILE_NAME))
    model.save(str(model_dir / MLMODEL))
    written = [MLMODEL, _CONDA_ENV_FILE_NAME, _REQUIREMENTS_FILE_NAME, _PYTHON_ENV_FILE_NAME]
    written += sorted(p.relative_to(model_dir).as_posix() for p in tokenizer_dir.rglob("*") if p.is_file())
    return written


class _Task:
    """What MLflow's default-signature lookup reads of a pipeline: its task."""

    def __init__(self, task: str):
        self.task = task


def write_or_warn(model_dir: Path, source: str) -> None:
    """write(), logging a warning instead of failing: the trained model is what the stage is for;
    without its MLmodel it is still a Hugging Face checkpoint (the registry then cannot load it)."""
    t0 = time.monotonic()
    try:
        files = write(model_dir, source)
    except Exception as e:  # noqa: BLE001 - whatever MLflow raises, the stage keeps its model
        log.warning("could not write the MLmodel file into %s (%s: %s); the model stays a plain Hugging Face "
                    "checkpoint that mlflow.transformers.load_model cannot load", model_dir, type(e).__name__, e)
        return
    size = sum((Path(model_dir) / f).stat().st_size for f in files)
    log.info("MLmodel written in %.1fs (%d files, %d bytes, no weights copied)", time.monotonic() - t0, len(files),
             size)
