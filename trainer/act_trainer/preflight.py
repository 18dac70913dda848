"""`act-trainer preflight --config FILE`: every input of an ACTJob that needs I/O to check,
checked before any stage (and so before any GPU) runs.

Each check returns the problems it found, each naming the ACTJob field and the fix; the
checks run side by side (the slow ones wait on network timeouts) and every problem is
reported at once: printed, and written to the termination log as
``{"stage": "preflight", "error": "...", "problems": [...]}`` with exit code 2 (bad input:
retrying cannot help). All good: exit 0 and ``{"stage": "preflight", "preflight": {...}}``; for a
GGUF model.uri, with the `uri`, `manifest` and `digest` of its converted checkpoint, which the
preflight then writes to storage once (<storage.root>/models, shared by every ACTJob of that root):
the base model every stage and the lineage name (status.stages.preflight.outputs).

What is checked: the storage root is writable with the credentials of the environment; the
model is a loadable checkpoint (config and tokenizer read with AutoConfig/AutoTokenizer, the
weights listed but not downloaded; tiny:// presets by name; a GGUF file read whole and converted); reused collect outputs have a
manifest and train.parquet; a reused judge is a loadable checkpoint; the expert file reads in
the trajectory format and is of this environment; MLflow answers (http(s) URIs); the
environment's package, game files, server or Java runtime are there; the packages the spec
asks for (vLLM, DeepSpeed) are installed; the TRL config keys a training stage passes through
(stages.<stage>.trl) are fields of the installed TRL's config for its method, and not ones the stage sets;
the reasoning benchmarks' data (stages.eval.reasoning) read and their MATH answers readable by math-verify.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from act_trainer import store
from act_trainer.config import PreflightConfig, TrlOptions
from act_trainer.manifest import MANIFEST, TERMINATION_LIMIT
from act_trainer.store.uris import local_path, split

log = logging.getLogger("act_trainer.preflight")

HTTP_TIMEOUT = (3.0, 5.0)  # connect, read: a server that does not answer in that time is reported
WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt")
SMALL_MODEL_FILES = ("config.json", "generation_config.json", "special_tokens_map.json", "added_tokens.json",
                     "merges.txt", "chat_template.jinja", *TOKENIZER_FILES)
EXPERT_RECORDS = 100  # records of an expert file parsed (the format, not every episode)
EXIT_PROBLEMS = 2  # bad input: the exit-code contract's permanent failure


# --- models ----------------------------------------------------------------------------------

def _tiny(field: str, uri: str) -> list[str]:
    from act_trainer.models import PRESETS

    preset, _, seed = (uri[len("tiny://"):] or "qwen3-tiny").partition("@")
    if preset not in PRESETS:
        return [f"{field}: unknown tiny preset '{preset}' in {uri}; choose one of "
                + ", ".join(f"tiny://{p}" for p in sorted(PRESETS))]
    if seed and not seed.isdigit():
        return [f"{field}: the seed in {uri} must be a number, e.g. tiny://{preset}@1"]
    return []


def _listing(field: str, uri: str, fix: str) -> tuple[list[str], list[str]]:
    """The files under `uri`, or the problem that there are none (or that storage refused)."""
    try:
        files = store.list_uris(uri)
    except store.StoreError as e:
        return [], [f"{field}: {e}"]
    return files, ([] if files else [f"{field}: nothing at {uri}; {fix}"])


def check_model(field: str, uri: str, models: str | None = None) -> list[str]:
    """A Hugging Face checkpoint: config.json, tokenizer files and weights listed; config and
    tokenizer loaded (downloaded first, without the weights, when the model is in S3). A GGUF
    file: check_gguf (`models`: where its conversion is kept in storage)."""
    if uri.startswith("tiny://"):
        return _tiny(field, uri)
    from act_trainer import gguf_models

    if gguf_models.is_gguf(uri):
        return check_gguf(field, uri, models)
    fix = "point it at a saved Hugging Face model directory (save_pretrained: config.json, tokenizer, weights)"
    files, problems = _listing(field, uri, fix)
    if problems:
        return problems
    names = {f[len(uri.rstrip("/")) + 1:]: f for f in files}
    if "config.json" not in names:
        problems.append(f"{field}: {uri} has no config.json, so it is not a model checkpoint; {fix}")
    if not any(t in names for t in TOKENIZER_FILES):
        problems.append(f"{field}: {uri} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); save the "
                        "tokenizer beside the model (tokenizer.save_pretrained)")
    if not any(n.endswith(WEIGHTS) for n in names):
        problems.append(f"{field}: {uri} has no weights (*.safetensors or *.bin); {fix}")
    if problems:
        return problems
    with tempfile.TemporaryDirectory(prefix="act-preflight-") as tmp:
        local = Path(tmp)
        try:
            if split(uri)[0] == "file":
                local = local_path(uri)
            else:
                for name in (n for n in names if n in SMALL_MODEL_FILES):
                    store.download(names[name], local / name)
            return _load_config_and_tokenizer(field, uri, local)
        except store.StoreError as e:
            return [f"{field}: {e}"]


_TRANSFORMERS = threading.Lock()  # its lazy imports are not thread-safe: one model loads at a time


def check_gguf(field: str, uri: str, models: str | None = None) -> list[str]:
    """A GGUF source: the package that reads it, the file (whole), a causal LM in it; then converted
    here into the local cache (gguf_models.py). Nothing to convert when an ACTJob of this storage
    root already wrote the file's conversion under `models` (found by the file's sha256)."""
    from act_trainer import gguf_models
    from act_trainer.models import cache_dir

    try:
        if models and gguf_models.find_stored(uri, models, cache_dir(), field):
            return []
        with _TRANSFORMERS:
            gguf_models.resolve(uri, cache_dir(), field)
    except gguf_models.GGUFError as e:
        return [str(e)]
    except store.StoreError as e:
        return [f"{field}: {e}"]
    return []


def _load_config_and_tokenizer(field: str, uri: str, local: Path) -> list[str]:
    with _TRANSFORMERS:
        return _load(field, uri, local)


def _load(field: str, uri: str, local: Path) -> list[str]:
    from transformers import AutoConfig, AutoTokenizer

    problems = []
    try:
        AutoConfig.from_pretrained(str(local), local_files_only=True)
    except Exception as e:  # noqa: BLE001 - whatever transformers raises, the user must hear it
        problems.append(f"{field}: the config.json of {uri} does not load ({type(e).__name__}: {str(e)[:300]}); "
                        "is it a transformers checkpoint of a supported architecture?")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(local), local_files_only=True)
    except Exception as e:  # noqa: BLE001
        problems.append(f"{field}: the tokenizer of {uri} does not load ({type(e).__name__}: {str(e)[:300]}); "
                        "save it with tokenizer.save_pretrained beside the model")
    else:
        if not tokenizer.chat_template:  # every stage's prompts are chat messages (prompts.py)
            problems.append(f"{field}: the tokenizer of {uri} has no chat template, and every stage renders its "
                            "prompts with it; use an instruct model, or set tokenizer.chat_template and save it")
    return problems


# --- reused outputs and expert data ----------------------------------------------------------

def check_pairs(field: str, uri: str) -> list[str]:
    """Another run's collect output: a manifest (per shard for a sharded collect) and train.parquet."""
    fix = "point it at the pairs of a finished collect stage (<root>/<namespace>/<name>/<uid>/pairs)"
    files, problems = _listing(field, uri, fix)
    if problems:
        return problems
    if not any(f.endswith("/" + MANIFEST) for f in files):
        return [f"{field}: {uri} has no {MANIFEST}, so it is not the output of a finished collect stage; {fix}"]
    if not any(f.endswith("/train.parquet") for f in files):
        return [f"{field}: {uri} has no train.parquet (contrast pairs); {fix}"]
    return []


def check_expert(field: str, uri: str, env: str | None) -> list[str]:
    """The trajectory format (docs/actjob.md): JSONL or parquet whose records read as trajectories."""
    from act_trainer import data

    fix = "write one episode per line as docs/actjob.md#expert-trajectory-format shows"
    try:
        blob = store.read_bytes(uri)
    except store.StoreError as e:
        return [f"{field}: {e}; give a JSONL or parquet file of expert trajectories"]
    if blob[:4] != b"PAR1":  # JSONL: the first records are enough to know the format
        blob = b"\n".join(blob.splitlines()[:EXPERT_RECORDS])
    try:
        trajs = data.loads_trajectories(blob, name=uri)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        return [f"{field}: {uri} is not an expert trajectories file ({type(e).__name__}: {str(e)[:300]}); {fix}"]
    except Exception as e:  # noqa: BLE001 - e.g. pyarrow on a broken parquet file
        return [f"{field}: {uri} does not read as JSONL or parquet ({type(e).__name__}: {str(e)[:300]}); {fix}"]
    others = sorted({t.env for t in trajs} - {env}) if env else []
    if others:
        return [f"{field}: {uri} holds trajectories of {', '.join(others)}, not of environment {env}; "
                "give this environment's expert data or change environment.name"]
    return []


# --- services ----------------------------------------------------------------------------------

def check_storage(field: str, uri: str) -> list[str]:
    try:
        store.check_writable(uri)
    except store.StoreError as e:
        return [f"{field}: {e}"]
    return []


def _mlflow_auth() -> tuple[dict, tuple | None]:
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return ({"Authorization": f"Bearer {token}"} if token else {}), ((user, password) if user else None)


def check_tracking(field: str, uri: str | None, experiment: str) -> list[str]:
    """An http(s) MLflow server answers its REST API with these credentials (other URIs are files)."""
    if not uri or not uri.startswith(("http://", "https://")):
        return []
    import requests

    headers, auth = _mlflow_auth()
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/get-by-name"
    try:
        r = requests.get(url, params={"experiment_name": experiment}, headers=headers, auth=auth,
                         timeout=HTTP_TIMEOUT)
    except requests.RequestException as e:
        return [f"{field}: MLflow at {uri} does not answer ({type(e).__name__}); start the tracking server or "
                "fix the URI (spec.tracking.uri, else the operator's ACT_MLFLOW_TRACKING_URI)"]
    if r.status_code in (401, 403):
        return [f"{field}: MLflow at {uri} refused the credentials (HTTP {r.status_code}); set "
                "MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD in the Secret named by "
                "spec.tracking.credentialsSecret"]
    if r.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" in r.text:
        return []  # the server answers; the experiment is created on first use
    if r.status_code >= 400:
        return [f"{field}: {uri} answered HTTP {r.status_code} to MLflow's REST API; is it an MLflow "
                "tracking server (and the URI its root)?"]
    return []


def check_env(env) -> list[str]:
    """What the environment needs besides its name: its package, game files, server or Java."""
    from act_trainer.envs import EnvError, require

    try:
        require(env.name)
    except EnvError as e:
        return [f"environment.name: {e}"]
    if env.name == "alfworld":
        from act_trainer.envs.alfworld_data import find_root

        try:
            find_root(env.data_dir)
        except EnvError as e:
            return [str(e)]
    elif env.name == "webshop":
        if not env.url:
            return ["environment.url: WebShop needs the address of a running WebShop server"]
        import requests

        try:
            requests.get(env.url, timeout=HTTP_TIMEOUT)
        except requests.RequestException as e:
            return [f"environment.url: the WebShop server at {env.url} does not answer ({type(e).__name__}); "
                    "start it or fix the URL"]
    elif shutil.which("java") is None:  # scienceworld, textworld-express
        from act_trainer.envs.jvm import install_java

        return [f"environment.name: {install_java(env.name)}"]
    return []


def check_trl(options: dict[str, TrlOptions]) -> list[str]:
    """Each stage's pass-through of TRL config keys (stages.<stage>.trl) against the fields of the
    installed TRL's config class that the stage's method trains with: an unknown key (with the
    closest field names), and a key the stage sets itself (with the field to set instead)."""
    import dataclasses
    import difflib

    import trl

    from act_trainer.stages.training import STAGE_KEYS

    problems = []
    for stage, o in options.items():
        field = f"stages.{stage}.trl"
        if o.config is None:
            problems.append(f"{field}: the {stage} stage's method does not train with TRL; remove it")
            continue
        names = [f.name for f in dataclasses.fields(getattr(trl, o.config))]
        for key in o.options:
            if key in STAGE_KEYS[o.config]:
                by = STAGE_KEYS[o.config][key]
                fix = ("the stage sets it itself; remove it" if not by else
                       f"set by {by}; use that" if by.startswith("spec.") else
                       f"set by spec.stages.{stage}.{by}; use that")
                problems.append(f"{field}.{key}: {fix}")
            elif key not in names:
                near = difflib.get_close_matches(key, names, n=3)
                hint = f"did you mean {' or '.join(near)}? " if near else ""
                problems.append(f"{field}.{key}: not a field of TRL {trl.__version__}'s {o.config}; {hint}"
                                f"see the {o.config} fields of the installed TRL, or remove it")
    return problems


def check_reasoning(settings) -> list[str]:
    """stages.eval.reasoning: each benchmark's questions read as the eval stage reads them (a JSONL
    file in the Hub dataset's columns, or the Hub itself, gated GPQA needing HF_TOKEN), and every
    MATH reference answer one that math-verify can read (else no answer could be graded right)."""
    from act_trainer import reasoning

    problems = []
    for i, b in enumerate(settings.benchmarks):
        field = f"stages.eval.reasoning.benchmarks[{i}]" + (".data" if b.data else "")
        try:
            questions = reasoning.load_questions(b.name, b.data, field)
        except reasoning.ReasoningDataError as e:
            problems.append(str(e))
            continue
        if b.name == "math500":
            unread = [q.id for q in questions[: settings.limit] if not reasoning.parse_gold(q.answer)]
            if unread:
                problems.append(f"{field}: math-verify cannot read the answer of {len(unread)} question(s) "
                                f"({', '.join(unread[:3])}{', ...' if len(unread) > 3 else ''}); write each "
                                "answer as LaTeX or a number, e.g. \\frac{1}{2} or 0.5")
    return problems


def check_packages(packages: dict[str, str]) -> list[str]:
    return [f"{field}: asks for {module}, which this image does not have; use the CUDA trainer image "
            f"(images/trainer) or `pip install 'act-operator[{module}]'`"
            for field, module in packages.items() if importlib.util.find_spec(module) is None]


# --- all of them -----------------------------------------------------------------------------

def checks(cfg: PreflightConfig) -> list[tuple[str, Callable[[], list[str]]]]:
    """(what, check) for everything `cfg` asks to check."""
    out = [("storage", lambda: check_storage("storage.root", cfg.output)),
           ("model", lambda: check_model("model.uri", cfg.model, cfg.models)),
           ("tracking", lambda: check_tracking("tracking.uri", cfg.tracking.uri, cfg.tracking.experiment)),
           ("packages", lambda: check_packages(cfg.packages))]
    if cfg.pairs:
        out.append(("pairs", lambda: check_pairs("stages.collect.reuse", cfg.pairs)))
    if cfg.judge:
        out.append(("judge", lambda: check_model("stages.judge.reuse", cfg.judge)))
    if cfg.expert:
        out.append(("expert", lambda: check_expert("environment.expert.uri", cfg.expert,
                                                   cfg.env.name if cfg.env else None)))
    if cfg.env:
        out.append(("environment", lambda: check_env(cfg.env)))
    if cfg.trl:
        out.append(("trl", lambda: check_trl(cfg.trl)))
    if cfg.reasoning:
        out.append(("reasoning", lambda: check_reasoning(cfg.reasoning)))
    return out


def _guarded(what: str, check: Callable[[], list[str]]) -> list[str]:
    try:
        return check()
    except Exception as e:  # noqa: BLE001 - a check that breaks is a problem to report, not a crash
        log.exception("preflight check %s raised", what)
        return [f"{what}: the check itself failed ({type(e).__name__}: {str(e)[:300]})"]


def problems(cfg: PreflightConfig) -> list[str]:
    """Every problem, in the order of the checks; ACTJob fields are named as spec.<field>."""
    _fast_s3()
    store.configure(endpoint=cfg.storage.endpoint, region=cfg.storage.region)
    todo = checks(cfg)
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        found = list(pool.map(lambda c: _guarded(*c), todo))
    return [f"spec.{p}" for ps in found for p in ps]


def _fast_s3() -> None:
    """An unreachable endpoint is reported in seconds: fewer retries, shorter timeouts than a stage's."""
    from act_trainer.store import s3

    s3.MAX_ATTEMPTS, s3.CONNECT_TIMEOUT_S, s3.READ_TIMEOUT_S = 2, 3, 10


def run(cfg: PreflightConfig) -> int:
    """Check, report, and return the exit code."""
    from act_trainer.manifest import write_termination_log

    started = time.monotonic()
    found = problems(cfg)
    seconds = round(time.monotonic() - started, 3)
    names = [what for what, _ in checks(cfg)]
    if found:
        for p in found:
            log.error("preflight: %s", p)
        write_termination_log(failure(found))
        return EXIT_PROBLEMS
    log.info("preflight: %d checks passed in %.1fs (%s)", len(names), seconds, ", ".join(names))
    result = {"stage": cfg.stage, cfg.stage: {"checks": names}}
    if converted := store_model(cfg):  # the stages' base model: status.stages.preflight.outputs
        result |= {"uri": converted["uri"], "manifest": store.join(converted["uri"], MANIFEST),
                   "digest": converted["digest"]}
        result[cfg.stage]["model"] = {"uri": converted["uri"], "source": cfg.model}
    seconds = round(time.monotonic() - started, 3)
    write_termination_log({**result, "metrics": {"seconds": seconds}})
    return 0


def store_model(cfg: PreflightConfig) -> dict | None:
    """A GGUF model.uri, once every check passed: its converted checkpoint in storage under
    cfg.models, written once for every ACTJob of the storage root (gguf_models.store_converted);
    its manifest, or None for any other model. A storage error raises: the preflight is retried."""
    from act_trainer import gguf_models
    from act_trainer.models import cache_dir

    if not cfg.models or not gguf_models.is_gguf(cfg.model):
        return None
    manifest = gguf_models.store_converted(cfg.model, cfg.models, cache_dir())
    log.info("preflight: %s is converted at %s", cfg.model, manifest["uri"])
    return manifest


def failure(found: list[str]) -> dict:
    """The termination message of a failed preflight: every problem that fits in what Kubernetes
    keeps of it (4 KiB), each cut to a readable length; the pod log has them all."""
    def body(problems: list[str]) -> dict:
        return {"stage": "preflight", "error": f"preflight found {len(found)} problem(s)", "problems": problems,
                "permanent": True}

    cut = [p if len(p) <= 600 else p[:597] + "..." for p in found]
    n = len(cut)
    while n > 1 and len(json.dumps(body(cut[:n])).encode()) > TERMINATION_LIMIT - 64:
        n -= 1
    return body(cut[:n] + ([f"... and {len(cut) - n} more (see the preflight log)"] if n < len(cut) else []))
