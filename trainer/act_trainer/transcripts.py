"""What eval's episodes and judgements looked like, to read: transcripts.jsonl, MLflow traces, text.

- Every episode eval plays keeps its steps (the observation the model saw, its whole output with
  its reasoning, the parsed action, the reward and score after it); eval writes them to
  `transcripts.jsonl` under its output (each shard under its own), one line per episode.
- The first TRACED_EPISODES episodes of each split and the first TRACED_JUDGEMENTS held-out
  judgements (each shard's) also go to MLflow as traces linked to the stage's run: a trace per
  episode with a span per step, a trace per judgement (prompt, output, right or wrong). Traces
  are made once the measuring is done, from these records, so they never slow a round of play.
- `actjob transcript` prints one episode as text (`format_episode`).
"""

from __future__ import annotations

import json
import textwrap
import time

TRANSCRIPTS = "transcripts.jsonl"
TRACED_EPISODES = 3     # per split and shard: a few to open in the MLflow UI; the JSONL keeps them all
TRACED_JUDGEMENTS = 5   # per shard


def step(number: int, seen: str, output: str, action: str | None, score_before: float, after,
         started_ns: int | None = None) -> dict:
    """One step of an episode: what the model saw, what it wrote and did, and what that earned
    (`after`: the environment's Observation after the step; a malformed turn changes nothing)."""
    return {"step": number, "observation": seen, "output": output, "action": action,
            "reward": after.score - score_before, "score": after.score, "done": bool(after.done),
            "started_ns": started_ns or time.time_ns(), "ended_ns": time.time_ns()}


def episode(split: str, result: dict, goal: str, turns: list[dict]) -> dict:
    """An episode's transcript: eval's per-episode result (episodes.json's record: `steps` counts them)
    with its steps as `turns`."""
    return {"split": split, **result, "goal": goal, "turns": turns}


def to_jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


# --- MLflow traces -----------------------------------------------------------------------------

def log_traces(client, experiment_id: str, run_id: str, episodes: list[dict], judgements: list[dict]) -> list[str]:
    """The given episodes and judgements as traces in `experiment_id`, linked to `run_id`; their ids."""
    import mlflow

    # MLflow exports traces to the global tracking URI, whatever the client's (e.g. a replay's)
    previous = mlflow.get_tracking_uri()
    if previous != client.tracking_uri:
        mlflow.set_tracking_uri(client.tracking_uri)
    try:
        ids = [episode_trace(client, experiment_id, run_id, e) for e in episodes]
        ids += [judgement_trace(client, experiment_id, run_id, j) for j in judgements]
        mlflow.flush_trace_async_logging(terminate=False)  # exported in the background: sent before the run ends
    finally:
        if previous != client.tracking_uri:
            mlflow.set_tracking_uri(previous)
    return ids


def episode_trace(client, experiment_id: str, run_id: str, record: dict) -> str:
    steps = record["turns"]
    start = steps[0]["started_ns"] if steps else time.time_ns()
    root = client.start_trace(
        f"episode {record['split']} {record['episode']}", span_type="AGENT", experiment_id=experiment_id,
        run_id=run_id, start_time_ns=start, inputs={"goal": record["goal"], "episode": record["episode"]},
        tags={"act.kind": "episode", "act.split": record["split"], "act.episode": record["episode"],
              "act.won": str(record["won"]).lower()})
    for s in steps:
        span = client.start_span(f"step {s['step']}", trace_id=root.trace_id, parent_id=root.span_id,
                                 span_type="LLM", inputs={"observation": s["observation"]},
                                 start_time_ns=s["started_ns"])
        client.end_span(root.trace_id, span.span_id, end_time_ns=s["ended_ns"],
                        outputs={k: s[k] for k in ("output", "action", "reward", "score", "done")},
                        status="OK" if s["action"] is not None else "ERROR")  # a malformed turn stands out
    client.end_trace(root.trace_id, end_time_ns=steps[-1]["ended_ns"] if steps else None,
                     outputs={k: record[k] for k in ("won", "score", "steps", "malformed")})
    return root.trace_id


def judgement_trace(client, experiment_id: str, run_id: str, record: dict) -> str:
    """A held-out judgement (judgements.jsonl's record with the prompt the model got)."""
    root = client.start_trace(
        f"judgement {record['pair_id']}", span_type="CHAT_MODEL", experiment_id=experiment_id, run_id=run_id,
        inputs={"messages": record["prompt"]},
        tags={"act.kind": "judgement", "act.pair_id": str(record["pair_id"]),
              "act.correct": str(record["correct"]).lower()})
    client.end_trace(root.trace_id, outputs={k: record[k] for k in ("output", "choice", "answer", "correct")})
    return root.trace_id


# --- reading -----------------------------------------------------------------------------------

class NoTranscript(Exception):
    """Nothing to show; the message says why and what to do."""


def read(uri: str) -> list[dict]:
    """Every episode transcript under an eval output (its own file, or one per shard, in shard order)."""
    from act_trainer import store

    files = [u for u in store.list_uris(uri) if u.rsplit("/", 1)[-1] == TRANSCRIPTS]
    return [json.loads(line) for u in sorted(files) for line in store.read_bytes(u).decode().splitlines() if line]


def choose(records: list[dict], split: str | None, episode: str | None) -> dict:
    """The episode asked for (by id, or its position in the split: 0 is the first), else the split's first."""
    if not records:
        raise NoTranscript(f"no {TRANSCRIPTS}: eval played no episodes (stages.eval.episodes is 0), or it ran "
                           "before eval kept transcripts")
    splits = list(dict.fromkeys(r["split"] for r in records))
    if split is not None and split not in splits:
        raise NoTranscript(f"--split: eval played no '{split}' episodes; choose one of {', '.join(splits)}")
    pool = [r for r in records if r["split"] == (split or splits[0])]
    if episode is None:
        return pool[0]
    for r in pool:
        if r["episode"] == episode:
            return r
    if episode.isdigit() and int(episode) < len(pool):
        return pool[int(episode)]
    raise NoTranscript(f"--episode: '{episode}' is not an episode of {pool[0]['split']} (nor a position below "
                       f"{len(pool)}); its episodes: {', '.join(r['episode'] for r in pool[:20])}"
                       + (" ..." if len(pool) > 20 else ""))


def listing(records: list[dict]) -> str:
    """One line per episode: split, id, outcome."""
    return "".join(f"{r['split']}\t{r['episode']}\t{'won' if r['won'] else 'lost'}\tscore {r['score']:g}\t"
                   f"{_steps(r)}\n" for r in records)


def _steps(record: dict) -> str:
    return f"{record['steps']} step" + ("" if record["steps"] == 1 else "s")


def _block(label: str, text: str | None) -> str:
    body = textwrap.indent((text or "").rstrip() or "(empty)", "    ")
    return f"  {label}:\n{body}\n"


def format_episode(record: dict) -> str:
    """An episode as text: its goal, then each step's observation, the model's output (reasoning
    included), the action parsed from it and the reward."""
    head = (f"episode {record['episode']} ({record['split']}): {'won' if record['won'] else 'not won'}, "
            f"score {record['score']:g}, {_steps(record)}, {record['malformed']} malformed\n"
            f"goal: {record['goal']}\n")
    out = [head]
    for s in record["turns"]:
        action = s["action"] if s["action"] is not None else "(none: no action could be parsed from the output)"
        out.append(f"\n--- step {s['step']} ---\n" + _block("observation", s["observation"])
                   + _block("model output", s["output"])
                   + f"  action: {action}\n  reward: {s['reward']:+g} (score {s['score']:g})"
                   + (", done" if s["done"] else "") + "\n")
    return "".join(out)
