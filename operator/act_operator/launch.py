"""One stage attempt, described once: what both executors launch, and how its results merge.

A `Launch` says on how many nodes and processes per node a stage runs, into how many shards
it is cut, the validated stage config of each shard, the command that runs it, and how the
shards' results become one. `manifests.py` turns it into a ConfigMap, a headless Service and
a Job; `local.py` into subprocesses on this machine. Pure: no I/O.

- One process: `act-trainer <stage> --config PATH`.
- One node, several processes: `torchrun --standalone --nproc_per_node=N`.
- Several nodes: one pod per node (an Indexed Job); torchrun with static rendezvous:
  node rank = JOB_COMPLETION_INDEX, master = pod 0 = `<job>-0.<service>`, port 29500.
  On one machine (`actjob run`) the nodes' processes run as one standalone gang.
- Several shards (collect, eval): shard i reads config i. On a cluster every pod of the
  Indexed Job mounts the same file and the trainer CLI takes its shard index from
  JOB_COMPLETION_INDEX, so the configs differ only in `shard.index`; `actjob run` writes
  each shard's config and runs the shards one after another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from act_operator import pipeline, stages
from act_operator.api import DNS_LABEL, ACTJob
from act_trainer import stagedefs
from act_trainer.util import is_number

CONFIG_PATH = "/etc/act/stage.json"  # where a pod reads its stage config
MASTER_PORT = 29500
INDEX_ENV = "JOB_COMPLETION_INDEX"  # a pod's node rank or shard, set by the Job controller
SHARD_DIR = "/shard-"  # shards publish side by side under <output>/shard-NNNNN (act_trainer.stages.common)


def checked(name: str) -> str:
    """A Kubernetes object name: a DNS label of at most 63 characters."""
    if len(name) > 63 or not DNS_LABEL.match(name):
        raise ValueError(f"object name '{name}' is not a DNS label of at most 63 characters")
    return name


def service_name(job_name: str) -> str:
    """Service names must start with a letter (DNS-1035); an ACTJob name may start with a digit."""
    return checked(job_name if job_name[0].isalpha() else f"act-{job_name}")


@dataclass(frozen=True)
class Launch:
    stage: str
    name: str  # the attempt's Job name, pipeline.job_name(actjob, stage, attempt)
    nodes: int
    processes_per_node: int
    configs: tuple  # one validated stage config per shard: configs[i].shard.index == i

    @property
    def shards(self) -> int:
        return len(self.configs)

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def indexed(self) -> bool:
        """One pod per node or per shard, each told its index by JOB_COMPLETION_INDEX."""
        return self.nodes > 1 or self.shards > 1

    @property
    def completions(self) -> int:
        return max(self.nodes, self.shards)

    @property
    def service(self) -> str | None:
        """The headless Service whose name is the pods' subdomain (multi-node only)."""
        return service_name(self.name) if self.nodes > 1 else None

    @property
    def master(self) -> str | None:
        return f"{self.name}-0.{self.service}" if self.nodes > 1 else None

    def command(self, config_path: str = CONFIG_PATH, *, python: str | None = None) -> list[str]:
        """What one pod runs, with the image's console scripts; or, given `python`, what runs the
        whole stage on one machine with that interpreter (every node's processes in one gang)."""
        program = ["-m", "act_trainer.cli", self.stage, "--config", config_path]
        if python:
            if self.world_size == 1:
                return [python, *program]
            return [python, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={self.world_size}", *program]
        if self.nodes > 1:  # $(JOB_COMPLETION_INDEX) is expanded by the kubelet from the container env
            return ["torchrun", f"--nnodes={self.nodes}", f"--nproc_per_node={self.processes_per_node}",
                    f"--node_rank=$({INDEX_ENV})", f"--master_addr={self.master}",
                    f"--master_port={MASTER_PORT}", *program]
        if self.processes_per_node > 1:
            return ["torchrun", "--standalone", f"--nproc_per_node={self.processes_per_node}", *program]
        return ["act-trainer", self.stage, "--config", config_path]

    def merge(self, results: list[dict]) -> dict:
        return merge_results(results)


def topology(job: ACTJob, stage: str) -> tuple[int, int, int]:
    """(nodes, processes per node, shards) of a stage, as its definition's topology reads its spec section."""
    d = stagedefs.get(stage)
    section = d.section(job.spec)
    if d.topology == "gang":
        return section.nodes, section.processes_per_node, 1
    if d.topology == "shards":
        return 1, 1, section.shards
    return 1, 1, 1


def plan(job: ACTJob, stage: str, attempt: int, *, tracking_uri: str | None = None) -> Launch:
    """The launch of attempt `attempt` of `stage`: its topology and every shard's config."""
    nodes, procs, shards = topology(job, stage)
    configs = tuple(stages.stage_config(job, stage, shard=i, tracking_uri=tracking_uri, attempt=attempt)
                    for i in range(shards))
    return Launch(stage, pipeline.job_name(job.metadata.name, stage, attempt), nodes, procs, configs)


# --- results ---------------------------------------------------------------------------------

# A rate or mean, by its name without the split prefix ("dev/") or a breakdown suffix
# (".pick-and-place"), and the count it was computed over, which the same stage reports under
# the same prefix and suffix: eval's success_rate over "dev/episodes", score over episodes,
# success_rate.T over "dev/episodes.T", malformed turns over "dev/turns", next-action measures over
# action_states, judgement measures over judge_pairs; collect's alternatives/s over the seconds
# it generated for, its verifying seconds per alternative over the alternatives it verified.
WEIGHTS = {
    "success_rate": "episodes", "score": "episodes", "episode_malformed_rate": "turns",
    "next_action_accuracy": "action_states", "next_action_match": "action_states",
    "action_malformed_rate": "action_states",
    "judge_accuracy": "judge_pairs", "judge_malformed_rate": "judge_pairs", "judge_position_consistency": "judge_pairs",
    "alternatives_per_s": "generate_seconds", "verify_seconds_per_alternative": "verified",
}
# other metrics whose names say they are rates, means or times: averaged over the shards that
# report them; every other number is a count and adds up
MEANS = ("rate", "accuracy", "match", "score", "reward", "seconds", "per_s", "loss")


def _parts(key: str) -> tuple[str, str, str]:
    """"dev/success_rate.boil" -> ("dev/", "success_rate", ".boil")."""
    prefix, slash, name = key.rpartition("/")
    base, dot, suffix = name.partition(".")
    return prefix + slash, base, dot + suffix


def _weight_key(key: str) -> str | None:
    prefix, base, suffix = _parts(key)
    return prefix + WEIGHTS[base] + suffix if base in WEIGHTS else None


def _is_mean(key: str) -> bool:
    base = _parts(key)[1]  # a breakdown suffix (a task type) never makes a count a rate
    return base in WEIGHTS or any(t in base for t in MEANS)


def merge_metrics(per_shard: list[dict]) -> dict[str, float]:
    """Counts add up; a rate is the mean over the shards weighted by the count each computed it
    over (a shard with no episodes does not pull the success rate down); a rate whose count is
    not known, or not reported by every shard, is the plain mean over the shards reporting it."""
    keys = dict.fromkeys(k for m in per_shard for k, v in m.items() if is_number(v))  # first-seen order
    merged: dict[str, float] = {}
    for k in keys:
        values = [(m[k], m) for m in per_shard if is_number(m.get(k))]
        if not _is_mean(k):
            merged[k] = sum(v for v, _ in values)
            continue
        w = _weight_key(k)
        weights = [m.get(w) for _, m in values] if w else []
        if weights and all(is_number(x) and x >= 0 for x in weights) and sum(weights) > 0:
            merged[k] = sum(v * x for (v, _), x in zip(values, weights, strict=True)) / sum(weights)
        else:
            merged[k] = sum(v for v, _ in values) / len(values)
    return merged


def merge_results(results: list[dict]) -> dict:
    """One stage result from its pods' (or processes') results: rank 0's for a gang (only it
    reports), or every shard's, merged. The same whatever order the results come in."""
    results = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]  # _index, _exit_code
    if len(results) <= 1:
        return results[0] if results else {}
    results.sort(key=lambda r: (r.get("uri", ""), r.get("manifest", "")))
    digests = sorted(r.get("digest", "") for r in results)
    merged = {"uri": results[0].get("uri", "").rsplit(SHARD_DIR, 1)[0], "manifest": results[0].get("manifest"),
              "shards": len(results), "digest": "sha256:" + hashlib.sha256("".join(digests).encode()).hexdigest(),
              "metrics": merge_metrics([r.get("metrics") or {} for r in results])}
    offline = next((r["tracking_offline"] for r in results if r.get("tracking_offline")), None)
    if offline:  # one shard's record in storage is enough to need the replay
        merged["tracking_offline"] = offline
    return merged
