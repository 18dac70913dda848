"""`act-trainer collect|judge|policy|eval --config FILE`: the programs stage pods run.

Exit codes: 0 done (manifest written), 1 the stage failed, 2 the config is invalid
(nothing was read or written).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback

from act_trainer.config import STAGES, ConfigError, load_stage_config

MODULES = {"collect": "collect", "judge": "judge", "policy": "policy", "eval": "evaluate"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="act-trainer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES:
        p = sub.add_parser(stage, help=f"run the {stage} stage")
        p.add_argument("--config", required=True, help="stage config (JSON), e.g. /etc/act/stage.json")
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

    try:
        cfg = load_stage_config(args.config, expected=args.command)
    except ConfigError as e:
        print(f"act-trainer {args.command}: invalid config:\n{e}", file=sys.stderr)
        return 2
    index = os.environ.get("JOB_COMPLETION_INDEX")
    if index is not None and cfg.shard.count > 1:  # a pod of an Indexed Job takes its own shard
        cfg.shard.index = int(index)
    module = importlib.import_module(f"act_trainer.stages.{MODULES[args.command]}")
    try:
        module.run(cfg)
    except Exception as e:  # report why, for the executor and the termination log
        from act_trainer.manifest import write_termination_log

        traceback.print_exc()
        write_termination_log({"stage": args.command, "error": f"{type(e).__name__}: {e}"[:3000]})
        print(f"act-trainer {args.command}: failed: {e}", file=sys.stderr)
        return 1
    return 0


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
        return 1
    store.write_bytes(args.out, data.dumps_jsonl(t.to_dict() for t in trajs))
    print(f"{len(trajs)} expert trajectories ({sum(len(t.steps) for t in trajs)} steps) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
