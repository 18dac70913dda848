"""`act-trainer <stage> --config FILE`: the programs stage pods run (the stages of act_trainer.stagedefs).

Exit codes (the contract both executors honour; see act_trainer.errors):
0 done (manifest written); 2 permanent: the config is invalid, or an input no retry can fix
(unknown split or task, a missing or ill-formed expert file or pairs, a model URI without
config.json, an environment that is not installed): the ACTJob fails at once; 1 anything else,
transient: retried per maxRetries. The termination message says which ("permanent").
The preflight (`act-trainer preflight`) exits 2 when it found problems, every one reported.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

from act_trainer import engines, stagedefs
from act_trainer.config import ConfigError, load_stage_config
from act_trainer.errors import EXIT_PERMANENT, exit_code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="act-trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for d in stagedefs.every():  # the preflight, the stages, the replay: one subcommand each
        p = sub.add_parser(d.name, help=d.help)
        p.add_argument("--config", required=True, help=f"{d.name} config (JSON), e.g. /etc/act/stage.json")
    serve = sub.add_parser("vllm-serve", help="the vLLM server of a GRPO stage in rollout.mode: server "
                                              "(`trl vllm-serve` on the stage's model)")
    serve.add_argument("--config", required=True, help="the stage's config (judge or policy)")
    tiny = sub.add_parser("tiny-model", help="build a tiny random-weight Qwen3 model + tokenizer (offline)")
    tiny.add_argument("--out", required=True)
    tiny.add_argument("--preset", default="qwen3-tiny")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--corpus", default=None, help="trajectories JSONL whose text the tokenizer should fit")
    exp = sub.add_parser("expert", help="write an environment's expert trajectories in the trajectory format")
    exp.add_argument("--env", required=True, help="environment name, e.g. alfworld, textworld-express")
    exp.add_argument("--split", default="train")
    exp.add_argument("--episodes", type=int, default=100)
    exp.add_argument("--max-length", type=int, default=50, help="skip episodes longer than this")
    exp.add_argument("--skip", type=int, default=0, help="skip this many episodes of the split first")
    exp.add_argument("--tasks", default="", help="comma-separated task names or types")
    exp.add_argument("--expert-type", default="default", choices=["default", "walkthrough", "handcoded"])
    exp.add_argument("--data-dir", default=None)
    exp.add_argument("--game", default=None)
    exp.add_argument("--game-params", default="")
    exp.add_argument("--out", required=True, help="file:// or s3:// URI (or a path) of the JSONL to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.command == "tiny-model":
        from act_trainer.models import build_tiny

        corpus = None
        if args.corpus:
            from act_trainer import data, store

            corpus = [text for t in data.loads_trajectories(store.read_bytes(args.corpus))
                      for text in [t.goal] + [s.observation + "\n" + s.action for s in t.steps]]
        print(build_tiny(args.out, args.preset, args.seed, corpus))
        return 0

    if args.command == "expert":
        return export_expert(args)

    if args.command == "vllm-serve":
        return vllm_serve(args)

    from act_trainer import logs, tracking

    capture, loaded = logs.start(), []  # the whole attempt's output, uploaded however it ends
    try:
        return run_stage(args, loaded)
    finally:
        logs.publish(capture, loaded[0] if loaded else None, tracking.RUNS[-1] if tracking.RUNS else None)


def run_stage(args, loaded: list) -> int:
    """Validate the config (appended to `loaded`), then run the program the stage's definition
    names (act_trainer.stagedefs): a stage's returns its result (exit 0), the preflight's and the
    replay's their exit code."""
    try:
        cfg = load_stage_config(args.config, expected=args.command)
        engines.check(cfg)  # vLLM asked for where it cannot run: bad input, before any data is read
    except (ConfigError, engines.EngineUnavailable) as e:
        return _failed(args.command, f"invalid config: {e}", EXIT_PERMANENT)
    loaded.append(cfg)
    index = os.environ.get("JOB_COMPLETION_INDEX")
    if index is not None and cfg.shard.count > 1:  # a pod of an Indexed Job takes its own shard
        cfg.shard.index = int(index)
    try:
        result = stagedefs.get(args.command).program()(cfg)
    except Exception as e:  # report why, for the executor and the termination log
        traceback.print_exc()
        return _failed(args.command, f"{type(e).__name__}: {e}", exit_code(e))
    return result if isinstance(result, int) and not isinstance(result, bool) else 0


def replay(cfg) -> int:
    """Exit 0 with the replayed run ids in the termination log; 1 (transient: the executor tries
    again) when MLflow or storage did not answer."""
    from act_trainer.manifest import write_termination_log
    from act_trainer.tracking import replay_all

    try:
        runs = replay_all(cfg)
    except Exception as e:  # noqa: BLE001 - reported, and retried by the executor
        traceback.print_exc()
        return _failed(cfg.stage, f"{type(e).__name__}: {e}", exit_code(e))
    write_termination_log({"stage": cfg.stage, cfg.stage: runs})
    print(f"replayed {sum(map(len, runs.values()))} run(s) under {cfg.tracking.parent_run_id}")
    return 0


def _failed(stage: str, error: str, code: int) -> int:
    """Report a failure in the termination log and on stderr; the exit code says whether a retry can help."""
    from act_trainer.manifest import write_termination_log

    permanent = code == EXIT_PERMANENT
    write_termination_log({"stage": stage, "error": error[:3000], "exit_code": code, "permanent": permanent})
    kind = "permanent (bad input or config; a retry cannot fix it)" if permanent else "transient (may be retried)"
    print(f"act-trainer {stage}: failed, {kind}: {error}", file=sys.stderr)
    return code


def vllm_serve(args) -> int:
    """Fetch the stage's model (s3://, file://, tiny://), then become `trl vllm-serve` on it."""
    try:
        cfg = load_stage_config(args.config)
    except ConfigError as e:
        print(f"act-trainer vllm-serve: invalid config:\n{e}", file=sys.stderr)
        return 2
    from act_trainer.models import resolve_model
    from act_trainer.stages.common import configure_storage

    configure_storage(cfg)
    r = cfg.rollout
    cmd = ["trl", "vllm-serve", "--model", str(resolve_model(cfg.model)), "--host", "0.0.0.0",
           "--port", str(r.server_port), "--tensor-parallel-size", str(r.tensor_parallel_size),
           "--gpu-memory-utilization", str(r.gpu_memory_utilization), "--enable-prefix-caching", "true"]
    logging.info("vllm-serve: %s", " ".join(cmd))
    os.execvp(cmd[0], cmd)
    return 0  # not reached


def export_expert(args) -> int:
    from pydantic import ValidationError

    from act_trainer import data, store
    from act_trainer.config import EnvironmentConfig, format_errors
    from act_trainer.envs import EnvError, make_env

    try:
        env_cfg = EnvironmentConfig(name=args.env, tasks=[t for t in args.tasks.split(",") if t],
                                    expert_type=args.expert_type, data_dir=args.data_dir, game=args.game,
                                    game_params=args.game_params)
    except ValidationError as e:
        print(f"act-trainer expert: {format_errors(e)}", file=sys.stderr)
        return 2
    try:
        env = make_env(env_cfg)
        try:
            if args.split not in env.splits():
                raise EnvError(f"--split: '{args.split}' is not a split of {args.env}; choose from {env.splits()}")
            trajs = list(env.expert(args.split, args.skip + args.episodes, args.max_length))[args.skip:]
        finally:
            env.close()
    except EnvError as e:
        print(f"act-trainer expert: {e}", file=sys.stderr)
        return exit_code(e)
    store.write_bytes(args.out, data.dumps_jsonl(t.to_dict() for t in trajs))
    print(f"{len(trajs)} expert trajectories ({sum(len(t.steps) for t in trajs)} steps) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
