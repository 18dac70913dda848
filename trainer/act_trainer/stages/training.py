"""What the training stages share: fit (SFT or GRPO through TRL), TRL configs, DeepSpeed
ZeRO, checkpoints that survive the pod (synced to storage, resumed from the newest complete one), and MLflow
metrics from the trainer's logs."""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from pathlib import Path

from transformers import TrainerCallback

from act_trainer import mlmodel, plots, progress, store
from act_trainer.config import TrainerBase
from act_trainer.contract import precision
from act_trainer.engines import gpu_available, resolve, vllm_cpu
from act_trainer.errors import InputError
from act_trainer.models import resolve_model
from act_trainer.rewards import action_reward
from act_trainer.tracking import StageRun

log = logging.getLogger("act_trainer.training")

COMPLETE = "_COMPLETE"  # written after every file of a checkpoint is uploaded
# a checkpoint upload that fails (e.g. S3 unreachable beyond botocore's retries) is tried again
# whole, after 5, 10, 20, 40 s (capped at 60): an outage of about two minutes costs no training
UPLOAD_ATTEMPTS = 5
UPLOAD_BACKOFF_S = 5.0
UPLOAD_BACKOFF_CAP_S = 60.0
_CKPT = re.compile(r"checkpoint-(\d+)$")


def deepspeed_config(cfg: TrainerBase) -> dict | None:
    """ZeRO for multi-process runs; None (plain DDP or one process) otherwise."""
    if cfg.world_size == 1 or cfg.zero_stage == 0:
        return None
    zero = {"stage": cfg.zero_stage, "overlap_comm": False, "contiguous_gradients": True}
    if cfg.zero_stage == 3:
        # tiny models: shard every parameter; save full 16-bit weights so save_model writes a usable model
        zero.update(stage3_param_persistence_threshold=0, stage3_gather_16bit_weights_on_model_save=True)
    # No "train_batch_size": from_pretrained runs zero.Init before DeepSpeed's comm layer knows the
    # world size, and an "auto" total filled in by transformers then fails DeepSpeed's batch check.
    # DeepSpeed derives it from the micro batch, accumulation and world size.
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
    }


# The TRL config keys the stage sets itself, by the field of the stage's spec section that sets them
# ("spec.<field>": a field of the spec; "": the stage decides alone). The pass-through
# (stages.<stage>.trl) may not name them: the preflight refuses them, naming the field to use. A unit
# test checks them against what stage_args and grpo_args return.
SFT_KEYS = {"output_dir": "", "learning_rate": "learningRate", "num_train_epochs": "epochs", "max_steps": "maxSteps",
            "per_device_train_batch_size": "batchSize", "gradient_accumulation_steps": "gradientAccumulation",
            "save_steps": "saveSteps", "save_strategy": "saveSteps", "logging_steps": "loggingSteps",
            "report_to": "", "seed": "spec.seed", "use_cpu": "", "bf16": "spec.model.precision",
            "gradient_checkpointing": "gradientCheckpointing", "deepspeed": "zeroStage", "disable_tqdm": "",
            "ddp_backend": "", "save_only_model": "", "dataloader_num_workers": ""}
GRPO_KEYS = SFT_KEYS | {
    "num_generations": "groupSize", "beta": "beta", "epsilon": "epsilon", "max_completion_length": "maxCompletionLength",
    "temperature": "temperature", "log_completions": "", "use_vllm": "rollout.engine", "vllm_mode": "rollout.mode",
    "vllm_tensor_parallel_size": "rollout.tensorParallelSize", "vllm_gpu_memory_utilization":
    "rollout.gpuMemoryUtilization", "vllm_enable_sleep_mode": "rollout.sleepMode", "vllm_server_host": "",
    "vllm_server_port": "rollout.serverPort", "vllm_group_port": "rollout.groupPort", "vllm_server_timeout": ""}
STAGE_KEYS = {"SFTConfig": SFT_KEYS, "GRPOConfig": GRPO_KEYS}


def with_trl(args: dict, cfg: TrainerBase) -> dict:
    """`args` plus the stage's pass-through of TRL config keys (stages.<stage>.trl). A key the stage
    sets itself is refused here too (the preflight refused it first, naming the field to use)."""
    clash = sorted(set(cfg.trl) & set(args))
    if clash:
        raise InputError(f"stages.{cfg.stage}.trl: {', '.join(clash)} are set by the stage itself; remove them "
                         "(the preflight names the field that sets each)")
    return {**args, **cfg.trl}


def common_args(cfg: TrainerBase, output_dir: Path) -> dict:
    """An SFTConfig's keys: what the stage sets, plus its pass-through."""
    return with_trl(stage_args(cfg, output_dir), cfg)


def stage_args(cfg: TrainerBase, output_dir: Path) -> dict:
    """The TRL config keys every training stage sets itself (SFT_KEYS). bf16: mixed precision as
    spec.model.precision says (auto: on GPUs only). On a CPU with AVX512-BF16 it trains SmolLM2-135M about
    1.7x faster than float32 (SFT and GRPO, a few steps each), with float32 master weights."""
    gpu = gpu_available()
    return dict(
        output_dir=str(output_dir), learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation, save_steps=cfg.save_steps, save_strategy="steps",
        logging_steps=cfg.logging_steps, report_to=[], seed=cfg.seed, use_cpu=not gpu,
        bf16=precision(cfg.precision, gpu).train_bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        deepspeed=deepspeed_config(cfg), disable_tqdm=False,
        # CPU gangs talk over gloo; a single process must not ask for a process group at all
        ddp_backend="gloo" if not gpu and cfg.world_size > 1 else None,
        save_only_model=False, dataloader_num_workers=0,
    )


VLLM_SERVER_HOST = "ACT_VLLM_SERVER_HOST"  # set by the operator on a server-mode gang: the server's Service


def rollout_args(cfg) -> dict:
    """TRL's vLLM settings for cfg.rollout (GRPOConfig fields of TRL 1.16): use_vllm, vllm_mode,
    the GPU memory share and tensor-parallel size, sleep mode (colocate, GPUs only: vLLM's CPU
    build has no sleep mode), the server's address (server mode). transformers: use_vllm=False.
    Colocated on vLLM's CPU build, it also keeps the linear weights of the vLLM that TRL builds
    here loadable, so that TRL's per-step weight sync reaches them (engines/vllm_cpu.py)."""
    r = cfg.rollout
    if resolve(r.engine, "rollout.engine") != "vllm":
        return {"use_vllm": False}
    args = dict(use_vllm=True, vllm_mode=r.mode, vllm_tensor_parallel_size=r.tensor_parallel_size)
    if r.mode == "colocate":
        vllm_cpu.keep_linear_weights_loadable()  # a no-op on GPUs
        args.update(vllm_gpu_memory_utilization=r.gpu_memory_utilization,
                    vllm_enable_sleep_mode=r.sleep_mode and gpu_available())
    else:
        args.update(vllm_server_host=os.environ.get(VLLM_SERVER_HOST, "localhost"), vllm_server_port=r.server_port,
                    vllm_group_port=r.group_port, vllm_server_timeout=1800.0)  # the server fetches the model first
    return args


def grpo_args(cfg: TrainerBase, output_dir: Path) -> dict:
    """A GRPOConfig's keys: what the stage sets (GRPO_KEYS), plus its pass-through."""
    return with_trl(dict(stage_args(cfg, output_dir), num_generations=cfg.group_size, beta=cfg.beta,
                         epsilon=cfg.epsilon, max_completion_length=cfg.max_completion_length,
                         temperature=cfg.temperature, log_completions=False, **rollout_args(cfg)), cfg)


# --- checkpoints -----------------------------------------------------------------------------

def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def checkpoints(uri: str) -> dict[int, bool]:
    """The checkpoints under `uri`: step -> whether its upload completed (its _COMPLETE marker)."""
    found: dict[int, bool] = {}
    for key in store.list_uris(uri):
        parts = key[len(uri.rstrip("/")) + 1:].split("/")
        m = _CKPT.match(parts[0])
        if m and len(parts) >= 2:
            step = int(m.group(1))
            found[step] = found.get(step, False) or (len(parts) == 2 and parts[1] == COMPLETE)
    return found


def newest_checkpoint(uri: str | None) -> str | None:
    """URI of the newest checkpoint whose upload completed, or None."""
    if not uri:
        return None
    complete = [step for step, done in checkpoints(uri).items() if done]
    return store.join(uri, f"checkpoint-{max(complete)}") if complete else None


def checkpoints_to_delete(found: dict[int, bool], keep: int, protect: frozenset[int] = frozenset()) -> list[int]:
    """Retention (pure): which checkpoints to delete so that the newest `keep` complete ones remain.

    `found`: step -> complete. Deleted: complete ones older than the newest `keep` complete ones,
    and incomplete ones older than the oldest of those (uploads a failed attempt abandoned).
    Never deleted: the newest `keep` complete ones, an incomplete one newer than them (an upload
    in progress: its predecessors stay until it completes), and the steps in `protect` (e.g. the
    checkpoint a resume is reading). keep < 1 deletes nothing (the caller's choice to delete all
    is `delete_all_checkpoints`).
    """
    if keep < 1:
        return []
    kept = sorted((s for s, done in found.items() if done), reverse=True)[:keep]
    if len(kept) < keep:  # fewer complete ones than asked for: keep everything
        return []
    oldest_kept = kept[-1]
    return sorted(s for s in found if s < oldest_kept and s not in protect)


def delete_checkpoint(uri: str, step: int) -> None:
    """Delete one checkpoint, its _COMPLETE marker first: never a complete-looking partial one."""
    ckpt = store.join(uri, f"checkpoint-{step}")
    store.delete_prefix(store.join(ckpt, COMPLETE))
    store.delete_prefix(ckpt)


def apply_retention(uri: str, keep: int, protect: frozenset[int] = frozenset()) -> list[int]:
    """Delete what checkpoints_to_delete() says, oldest first; returns the steps deleted."""
    doomed = checkpoints_to_delete(checkpoints(uri), keep, protect)
    for step in doomed:
        delete_checkpoint(uri, step)
    if doomed:
        log.info("retention (keep %d): deleted checkpoint(s) %s under %s", keep, doomed, uri)
    return doomed


def delete_all_checkpoints(cfg: TrainerBase) -> None:
    """deleteCheckpointsAfterSave: once the stage's model is saved and published, no checkpoint is
    needed (a retry of a finished stage reuses its outputs). A failure here only warns: the model is safe."""
    if not (cfg.checkpoints and cfg.delete_checkpoints_after_save):
        return
    try:
        steps = sorted(checkpoints(cfg.checkpoints))
        for step in steps:
            delete_checkpoint(cfg.checkpoints, step)
        log.info("deleteCheckpointsAfterSave: deleted %d checkpoint(s) under %s", len(steps), cfg.checkpoints)
    except store.StoreError as e:
        log.warning("deleteCheckpointsAfterSave: could not delete the checkpoints under %s: %s",
                    cfg.checkpoints, e)


def fetch_checkpoint(uri: str | None, output_dir: Path) -> str | None:
    """Download the newest complete checkpoint into output_dir; every rank gets its path.
    One process per node downloads (under a file lock), the others find it there."""
    from filelock import FileLock

    latest = newest_checkpoint(uri)
    if latest is None:
        return None
    local = output_dir / latest.rstrip("/").rsplit("/", 1)[1]
    output_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(output_dir / ".fetch.lock")):
        if not (local / COMPLETE).exists():
            store.download(latest, str(local))
    log.info("resuming from %s", latest)
    return str(local)


class SyncCheckpoints(TrainerCallback):
    """Upload each checkpoint while training goes on. Every node uploads what it wrote (ZeRO
    shards live on each node's disk); once all have finished, at the next save or at the end
    of training, the main process marks the checkpoint complete. Only complete ones resume."""

    def __init__(self, uri: str | None, keep: int = 2, resumed: str | None = None):
        self.uri = uri
        self.keep = keep
        # the checkpoint a resume is reading stays until a newer one completed (every rank read it by then)
        m = _CKPT.search(resumed.rstrip("/")) if resumed else None
        self.protect = frozenset({int(m.group(1))}) if m else frozenset()
        self.pending: tuple[str, threading.Thread | None] | None = None
        self.error: BaseException | None = None

    def _upload(self, local: Path, name: str) -> None:
        """Upload the checkpoint's files, retrying the whole upload with backoff through an S3
        outage (each object also has botocore's own retries); the marker is written by _finish,
        only after this succeeded, so a checkpoint cut short is never taken for a complete one."""
        dest = store.join(self.uri, name)
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                store.upload(str(local), dest)
                return
            except store.StoreError as e:
                if attempt == UPLOAD_ATTEMPTS:
                    self.error = e
                    return
                delay = min(UPLOAD_BACKOFF_CAP_S, UPLOAD_BACKOFF_S * 2 ** (attempt - 1))
                log.warning("checkpoint upload to %s failed (attempt %d/%d: %s); retrying in %.0fs",
                            dest, attempt, UPLOAD_ATTEMPTS, e, delay)
                time.sleep(delay)
            except BaseException as e:  # noqa: BLE001 - re-raised in the training thread
                self.error = e
                return

    def on_save(self, args, state, control, **kwargs):
        if not self.uri:
            return
        self._finish(state)
        name = f"checkpoint-{state.global_step}"
        local = Path(args.output_dir) / name
        thread = None
        if _local_rank() == 0 and local.exists():
            thread = threading.Thread(target=self._upload, args=(local, name), daemon=True)
            thread.start()
        self.pending = (name, thread)

    def on_train_end(self, args, state, control, **kwargs):
        self._finish(state)

    def _finish(self, state) -> None:
        if self.pending is None:
            return
        name, thread = self.pending
        self.pending = None
        if thread is not None:
            thread.join()
        if self.error is not None:
            raise RuntimeError(f"checkpoint upload to {self.uri} failed: {self.error}") from self.error
        _barrier()
        if state.is_world_process_zero:
            store.write_bytes(store.join(self.uri, name, COMPLETE), b"")
            log.info("checkpoint %s synced to %s", name, self.uri)
            try:  # only now that a newer one is complete may older ones go
                apply_retention(self.uri, self.keep, self.protect)
            except store.StoreError as e:  # storage kept more than asked: warn, keep training
                log.warning("checkpoint retention under %s failed: %s", self.uri, e)
            self.protect = frozenset()


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class LogMetrics(TrainerCallback):
    """Trainer logs -> MLflow metrics of the stage's child run, keyed by optimizer step."""

    def __init__(self, run: StageRun):
        self.run = run

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            self.run.log_metrics({k.replace("/", "."): v for k, v in logs.items()}, step=state.global_step)


class ReportProgress(TrainerCallback):
    """Optimizer steps done of max_steps, throughput and ETA, and the latest reward, loss and
    malformed rate, reported (act_trainer.progress) at most every ACT_PROGRESS_SECONDS and at the end."""

    def __init__(self, run: StageRun):
        self.run = run
        self.meter: progress.Meter | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # a resumed attempt starts at its checkpoint's step
            self.meter = progress.Meter(self.run.cfg.stage, state.max_steps or None, done=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.meter is not None and logs:
            self.meter.observe(logs)

    def on_step_end(self, args, state, control, **kwargs):
        self._report(state, final=False)

    def on_train_end(self, args, state, control, **kwargs):
        self._report(state, final=True)

    def _report(self, state, final: bool) -> None:
        if self.meter is not None and (p := self.meter.update(state.global_step, final=final)):
            self.run.report(p)


def callbacks(cfg: TrainerBase, st, resume: str | None) -> list[TrainerCallback]:
    """What every training stage's trainer reports through: checkpoints synced to storage, MLflow
    metrics, progress."""
    return [SyncCheckpoints(cfg.checkpoints, cfg.keep_checkpoints, resume), LogMetrics(st.run),
            ReportProgress(st.run)]


def fit(cfg: TrainerBase, st, rows: list[dict], method: str, model_dir=None) -> tuple[dict, dict] | None:
    """SFT on prompt/completion rows (il), or GRPO with the action reward on prompt/expert_action
    rows (rl), from cfg.model, resuming from the stage's checkpoints; the saved model's metrics and
    runtime info, or None on a rank that does not publish. The policy stage, the warm-up and the
    Early Experience baselines train through it."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    model_dir = model_dir or resolve_model(cfg.model)
    ckpt_dir = st.scratch / "checkpoints"
    resume = fetch_checkpoint(cfg.checkpoints, ckpt_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = Dataset.from_list(rows)
    if method == "il":
        trainer = SFTTrainer(model=str(model_dir), processing_class=tokenizer, train_dataset=dataset,
                             args=SFTConfig(**common_args(cfg, ckpt_dir)), callbacks=callbacks(cfg, st, resume))
    else:
        trainer = GRPOTrainer(model=str(model_dir), processing_class=tokenizer, reward_funcs=[action_reward],
                              train_dataset=dataset, args=GRPOConfig(**grpo_args(cfg, ckpt_dir)),
                              callbacks=callbacks(cfg, st, resume))
    return train_and_save(trainer, st, resume)


def train_and_save(trainer, st, resume: str | None) -> tuple[dict, dict] | None:
    """Train (from the checkpoint `resume` names, if any), save the model into the stage's
    outputs, and on the main process return (metrics, how it ran); None on the others."""
    result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_model(str(st.out))  # every rank: ZeRO-3 gathers the shards here
    if not trainer.is_world_process_zero():
        return None
    info = runtime_info(trainer)
    log.info("%s trained %d steps on %s", st.cfg.stage, trainer.state.global_step, info)
    history = trainer.state.log_history
    (st.out / "train_log.json").write_text(json.dumps(history, indent=1))
    plots.log_plot(st.run, f"{st.cfg.stage}_curves.png", plots.training_curves, history, f"{st.cfg.stage}: training")
    # the output is itself an MLflow model (no second copy of the weights): the registry's version loads
    mlmodel.write_or_warn(st.out, st.cfg.output)
    metrics = {**summarize(history), "steps": trainer.state.global_step,
               "train_runtime": result.metrics.get("train_runtime", 0.0), "resumed": bool(resume)}
    return metrics, info


def runtime_info(trainer) -> dict:
    """How the run was actually distributed, for the manifest: what ran, not what was asked."""
    acc = trainer.accelerator
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    return {"distributed_type": str(acc.distributed_type.value), "world_size": acc.num_processes,
            "zero_stage": plugin.zero_stage if plugin else None}


# success_rate, episode_score: online-rl's episodes (rewards.episode_reward)
SUMMARIZED = ("reward", "loss", "malformed_rate", "success_rate", "episode_score")


def summarize(log_history: list[dict], keys: tuple[str, ...] = SUMMARIZED) -> dict:
    """First and last logged values of the curves that matter, and the step count."""
    out = {}
    for key in keys:
        values = [h[key] for h in log_history if key in h]
        if values:
            out[f"{key}_first"], out[f"{key}_last"] = values[0], values[-1]
            out[key] = sum(values[-3:]) / len(values[-3:])
    train = [h for h in log_history if "train_loss" in h]
    if train:
        out["train_loss"] = train[-1]["train_loss"]
    return out
