"""Does the ACT stage train judgement? A CPU-scale experiment, reported as the paper does.

    python experiments/act_learns.py            # the full comparison (3 seeds), < 1 h on 2 cores
    python experiments/act_learns.py --smoke    # 1 seed, a handful of steps: checks the mechanics

Every step is an ACTJob run by the local executor (`actjob run`), all from the same data:

 0. Expert data. TextWorldExpress "twc" (put one item away in one room): gold paths of train
    episodes, split into a warm-up part and an ACT part; dev episodes for evaluation.
 1. Base model. A random Qwen3-architecture model ("qwen3-small", ~3.5M parameters) with a
    tokenizer fitted to the expert text.
 2. Warm-up (the initial policy pi0, a documented step, not a hidden one). There is no
    instruction-tuned model to download, so pi0 is made: IL on the warm-up episodes, plus
    judgement prompts answered with a *random* label (policy.formatJudgements) so that pi0
    answers in the format without knowing which action is better. Its eval is "before ACT".
 3. Contrast pairs, once: collect from pi0 on the ACT episodes (K samples, keep M). The
    inadmissible-action filter is off here: pi0's samples that differ from the expert's action
    are mostly objects or containers that are not there (measured: 1274 of 2216 samples), and
    with the filter on only ~20 pairs would remain. Judging them against the expert action is
    still a judgement of the state; the filter report in the pairs' manifest counts them.
 4. Arms, for each seed, all starting from pi0 and reusing the pairs of step 3:
      ACT only  = judge (GRPO on the pairs); its eval gives judgement accuracy after ACT
      IL        = policy il from pi0            IL w/ ACT = policy il from the seed's judge
      RL        = policy rl from pi0            RL w/ ACT = policy rl from the seed's judge
 5. Report: mean ± std per arm, malformed rates, a PNG (accuracy per arm with error bars and
    the judge's reward curve), written beside the runs and logged to MLflow.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")  # an experiment, not a benchmark: use both cores
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from rich.console import Console  # noqa: E402

from act_operator.api import ACTJob, parse_actjob  # noqa: E402
from act_operator.local import LocalExecutor  # noqa: E402
from act_operator.report import Run, aggregate, table  # noqa: E402

ENV = {"name": "textworld-express", "game": "twc", "gameParams": "numLocations=1,numItemsToPutAway=1",
       "maxSteps": 8, "history": 1}
PRESET = "qwen3-mini"
ARMS = ("ACT only", "IL", "IL w/ ACT", "RL", "RL w/ ACT")
METRICS = ["judge_accuracy", "dev/next_action_accuracy", "dev/success_rate", "judge_malformed_rate",
           "dev/action_malformed_rate"]

# Tuned on this machine: judge lr 5e-5 left the judge's greedy answers unchanged after 120 steps,
# 1e-3 collapsed it into malformed output by step 80; 3e-4 for 200 steps moved it.
FULL = dict(seeds=3, warmup_episodes=60, act_episodes=80, warmup_steps=300, judge_steps=120, policy_steps=60,
            eval_episodes=20, action_states=120, judge_pairs=150,
            judge={"stages.judge.learningRate": 3e-4, "stages.judge.maxSteps": 200},
            il={"learningRate": 2e-4}, rl={"learningRate": 1e-4})
SMOKE = dict(seeds=1, warmup_episodes=6, act_episodes=8, warmup_steps=4, judge_steps=2, policy_steps=2,
             eval_episodes=2, action_states=8, judge_pairs=8, judge={}, il={}, rl={})


class Experiment:
    def __init__(self, out: Path, p: dict, console: Console):
        self.out, self.p, self.console = out.resolve(), p, console
        self.storage = f"file://{self.out / 'storage'}"
        self.tracking = f"sqlite:///{self.out / 'mlflow.db'}"
        self.durations: dict[str, float] = {}

    # --- running ACTJobs ---------------------------------------------------------------------
    def spec(self, **overrides) -> dict:
        p = self.p
        spec = {
            "model": {"uri": f"file://{self.out / 'base-model'}"},
            "environment": {**ENV, "expert": {"uri": f"file://{self.out / 'expert-act.jsonl'}"}},
            "storage": {"root": self.storage},
            "tracking": {"uri": self.tracking, "experiment": "act-learns"},
            "stages": {
                "collect": {"enabled": False, "maxRetries": 0},
                "judge": {"enabled": False, "maxRetries": 0, "gradientCheckpointing": False, "groupSize": 4, "batchSize": 16, "learningRate": 5e-5,
                          "maxSteps": p["judge_steps"], "saveSteps": 1000, "maxCompletionLength": 16},
                "policy": {"method": "none", "maxRetries": 0, "gradientCheckpointing": False, "batchSize": 16, "groupSize": 4, "learningRate": 2e-4,
                           "maxSteps": p["policy_steps"], "saveSteps": 1000, "maxCompletionLength": 16},
                "eval": {"maxRetries": 0, "splits": ["dev"], "episodes": p["eval_episodes"], "actionStates": p["action_states"],
                         "judgePairs": p["judge_pairs"], "maxNewTokens": 24},
            },
        }
        for dotted, value in overrides.items():
            node, *path, last = [spec, *dotted.split(".")]
            for key in path:
                node = node.setdefault(key, {})
            node[last] = value
        return spec

    def run(self, name: str, spec: dict) -> ACTJob:
        job = parse_actjob({"apiVersion": "act-operator.io/v1alpha1", "kind": "ACTJob",
                            "metadata": {"name": name}, "spec": spec})
        (self.out / "actjobs").mkdir(parents=True, exist_ok=True)
        (self.out / "actjobs" / f"{name}.json").write_text(json.dumps(spec, indent=2))
        started = time.monotonic()
        done = LocalExecutor(job, self.out / "work", self.console).run()
        self.durations[name] = time.monotonic() - started
        if done.status.phase != "Succeeded":
            raise SystemExit(f"{name} {done.status.phase}: {done.status.message}")
        return done

    def sh(self, *cmd: str) -> None:
        import subprocess

        self.console.print(f"[dim]$ {' '.join(cmd)}[/]")
        subprocess.run(cmd, check=True)

    # --- the steps ---------------------------------------------------------------------------
    def prepare(self) -> None:
        p, tw = self.p, ENV
        base = ["act-trainer", "expert", "--env", tw["name"], "--game", tw["game"], "--game-params",
                tw["gameParams"], "--split", "train", "--max-length", "12"]
        if not (self.out / "expert-act.jsonl").exists():
            self.sh(*base, "--episodes", str(p["warmup_episodes"]), "--out", str(self.out / "expert-warmup.jsonl"))
            self.sh(*base, "--skip", str(p["warmup_episodes"]), "--episodes", str(p["act_episodes"]),
                    "--out", str(self.out / "expert-act.jsonl"))
        if not (self.out / "base-model" / "config.json").exists():
            self.sh("act-trainer", "tiny-model", "--preset", PRESET, "--out", str(self.out / "base-model"),
                    "--corpus", str(self.out / "expert-warmup.jsonl"))

    def warmup(self) -> str:
        job = self.run("warmup", self.spec(**{
            "environment.expert.uri": f"file://{self.out / 'expert-warmup.jsonl'}",
            "stages.policy.method": "il", "stages.policy.learningRate": 1e-3,
            "stages.policy.maxSteps": self.p["warmup_steps"], "stages.policy.formatJudgements": 0.5,
            "stages.eval.enabled": False}))
        return job.status.model_uri

    def contrast_pairs(self, pi0: str) -> ACTJob:
        """Pairs from pi0, and pi0's own eval: the 'before ACT' row."""
        return self.run("pairs", self.spec(**{
            "model.uri": pi0, "stages.collect": {"enabled": True, "maxRetries": 0, "samples": 8, "maxAlternatives": 3,
                                                 "filterInadmissible": False,
                                                 "maxNewTokens": 16, "heldoutFraction": 0.25, "batchSize": 32}}))

    def arms(self, pi0: str, pairs: str, seed: int) -> dict[str, ACTJob]:
        reuse = {"model.uri": pi0, "seed": seed, "stages.collect.reuse": pairs}
        runs = {"ACT only": self.run(f"act-only-s{seed}", self.spec(**reuse, **{
            "stages.judge.enabled": True, **self.p["judge"]}))}
        judge = runs["ACT only"].status.stages["judge"].outputs.uri
        for method in ("il", "rl"):
            tuned = {f"stages.policy.{k}": v for k, v in self.p[method].items()}
            runs[method.upper()] = self.run(f"{method}-s{seed}", self.spec(**reuse, **tuned, **{
                "stages.policy.method": method}))
            runs[f"{method.upper()} w/ ACT"] = self.run(f"{method}-act-s{seed}", self.spec(**reuse, **tuned, **{
                "stages.judge.reuse": judge, "stages.policy.method": method}))
        return runs


def reward_curves(runs: list[ACTJob]) -> list[list[float]]:
    from act_trainer import data as _  # noqa: F401  (keeps the import-light trainer path warm)

    curves = []
    for job in runs:
        log_file = Path(job.status.stages["judge"].outputs.uri.removeprefix("file://")) / "train_log.json"
        if log_file.exists():
            curves.append([h["reward"] for h in json.loads(log_file.read_text()) if "reward" in h])
    return curves


def plot(results: dict, curves: list[list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 4.8))
    labels = list(results)
    shown = [m for m in METRICS if "malformed" not in m]
    width = 0.8 / len(shown)
    for i, metric in enumerate(shown):
        means = [results[a].get(metric, (float("nan"), 0, 0))[0] * 100 for a in labels]
        stds = [results[a].get(metric, (0, 0, 0))[1] * 100 for a in labels]
        ax1.bar([x + i * width for x in range(len(labels))], means, width, yerr=stds, capsize=3, label=metric)
    ax1.axhline(50, color="grey", linestyle=":", linewidth=1, label="chance (judgement)")
    ax1.set_xticks([x + width * (len(shown) - 1) / 2 for x in range(len(labels))], labels, rotation=15)
    ax1.set_ylabel("%")
    ax1.set_title("held-out accuracy per arm (mean ± std over seeds)")
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    window = 20
    for i, curve in enumerate(curves):
        line, = ax2.plot(range(1, len(curve) + 1), curve, alpha=0.2)
        smooth = [statistics.fmean(curve[max(0, j - window + 1):j + 1]) for j in range(len(curve))]
        ax2.plot(range(1, len(curve) + 1), smooth, color=line.get_color(), label=f"seed {i} ({window}-step mean)")
    ax2.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    ax2.set_xlabel("judge optimizer step")
    ax2.set_ylabel("mean reward (correct judgement)")
    ax2.set_title("ACT stage: GRPO reward")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1 seed, a handful of steps (CI)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--out", default=".act/experiment")
    args = parser.parse_args(argv)
    p = dict(SMOKE if args.smoke else FULL)
    if args.seeds:
        p["seeds"] = args.seeds
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)
    exp = Experiment(Path(args.out), p, console)
    started = time.monotonic()
    exp.out.mkdir(parents=True, exist_ok=True)
    exp.prepare()
    pi0 = exp.warmup()
    pairs_job = exp.contrast_pairs(pi0)
    pairs = pairs_job.status.stages["collect"].outputs.uri

    runs = [Run("pi0 (before ACT)", ENV["name"], dict(pairs_job.status.stages["eval"].metrics), "pairs")]
    jobs: dict[str, list[ACTJob]] = {a: [] for a in ARMS}
    for seed in range(p["seeds"]):
        for arm, job in exp.arms(pi0, pairs, seed).items():
            jobs[arm].append(job)
            runs.append(Run(arm, ENV["name"], dict(job.status.stages["eval"].metrics), job.metadata.name))

    report = exp.out / "report"
    report.mkdir(exist_ok=True)
    results = aggregate(runs)
    Console(width=200).print(table(runs, METRICS))
    curves = reward_curves(jobs["ACT only"])
    plot(results, curves, report / "act_learns.png")
    collect = pairs_job.status.stages["collect"].metrics
    summary = {"params": p, "environment": ENV, "minutes": round((time.monotonic() - started) / 60, 1),
               "pairs": {k: collect.get(k) for k in ("pairs_train", "pairs_heldout", "kept", "sampled")},
               "results": {a: {m: {"mean": v[0], "std": v[1], "seeds": v[2]} for m, v in r.items()}
                           for a, r in results.items()},
               "runs": [{"arm": r.label, "name": r.name, "metrics": r.metrics} for r in runs],
               "judge_reward_curves": curves, "stage_minutes": {k: round(v / 60, 2) for k, v in exp.durations.items()}}
    (report / "results.json").write_text(json.dumps(summary, indent=2))
    log_to_mlflow(exp.tracking, report, summary)
    console.print(f"report: {report / 'results.json'}, plot: {report / 'act_learns.png'} "
                  f"({summary['minutes']} min)")
    return 0


def log_to_mlflow(uri: str, report: Path, summary: dict) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("act-learns")
    with mlflow.start_run(run_name="report"):
        mlflow.log_params({k: str(v)[:500] for k, v in summary["params"].items()})
        for arm, metrics in summary["results"].items():
            for metric, v in metrics.items():
                key = f"{arm}/{metric}".replace(" ", "_").replace("(", "").replace(")", "")
                mlflow.log_metric(key, v["mean"])
        mlflow.log_artifacts(str(report))


if __name__ == "__main__":
    sys.exit(main())
