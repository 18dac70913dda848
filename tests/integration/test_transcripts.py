"""Eval's episodes and judgements to read: transcripts.jsonl, MLflow traces (read back with the
MLflow client from the real server) and `actjob transcript`, with the tiny model on ScienceWorld."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_stages import ENV, MODEL, collected, common, run_stage  # noqa: F401  (collected: the shared pairs)

from act_operator.api import ACTJobStatus, StageOutputs, StageStatus
from act_operator.rundir import RunDir
from act_trainer import store, transcripts
from act_trainer.config import EvalConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def evaluated(collected, tmp_path_factory):  # noqa: F811
    """One eval with one episode more than are traced, played two at a time, and judgements."""
    cfg = EvalConfig(**common(collected["root"], "eval-transcripts", collected["tracking"], collected["parent"]),
                     model=MODEL, env=ENV, splits=["dev"], episodes=transcripts.TRACED_EPISODES + 1,
                     parallel_episodes=2, action_states=0, judge_pairs=transcripts.TRACED_JUDGEMENTS + 1,
                     pairs=collected["cfg"].output, max_new_tokens=24)
    proc, report = run_stage(cfg, tmp_path_factory.mktemp("eval-transcripts"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return cfg, report, proc.stdout + proc.stderr


def test_transcripts_hold_every_step_of_every_episode(evaluated):
    cfg, report, _ = evaluated
    played = json.loads(store.read_bytes(f"{cfg.output}/episodes.json"))["dev"]
    records = transcripts.read(cfg.output)
    assert len(records) == len(played) == cfg.episodes
    for record, result in zip(records, played, strict=True):
        assert {k: record[k] for k in result} == result  # the episode's result, then its turns
        assert [s["step"] for s in record["turns"]] == list(range(1, result["steps"] + 1))
        assert sum(s["action"] is None for s in record["turns"]) == result["malformed"]
        assert all(s["output"] and s["observation"] for s in record["turns"])
        assert record["turns"][-1]["score"] == result["score"]
        scores = [s["score"] for s in record["turns"]]  # a reward is what a step added to the score
        assert [s["reward"] for s in record["turns"][1:]] == [b - a for a, b in zip(scores[:-1], scores[1:], strict=True)]


def test_traces_of_the_first_episodes_and_judgements_are_linked_to_the_run(evaluated):
    from mlflow import MlflowClient

    cfg, report, log = evaluated
    client = MlflowClient(cfg.tracking.uri)
    run = client.get_run(report["mlflow_run_id"])
    traces = client.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id, max_results=100)
    by_kind: dict[str, list] = {}
    for t in traces:
        by_kind.setdefault(t.info.tags["act.kind"], []).append(t)
    records = {r["episode"]: r for r in transcripts.read(cfg.output)}
    episodes = sorted(by_kind["episode"], key=lambda t: list(records).index(t.info.tags["act.episode"]))
    assert [t.info.tags["act.episode"] for t in episodes] == list(records)[:transcripts.TRACED_EPISODES]
    for t in episodes:
        record = records[t.info.tags["act.episode"]]
        root, *steps = t.data.spans
        assert root.parent_id is None and all(s.parent_id == root.span_id for s in steps)
        assert root.outputs["won"] == record["won"] and t.info.tags["act.split"] == "dev"
        assert [s.name for s in steps] == [f"step {s['step']}" for s in record["turns"]]  # a span per step
        for span, s in zip(steps, record["turns"], strict=True):
            assert span.inputs == {"observation": s["observation"]}
            assert span.outputs["output"] == s["output"] and span.outputs["action"] == s["action"]
            assert span.outputs["reward"] == s["reward"]
    judged = [json.loads(line) for line in store.read_bytes(f"{cfg.output}/judgements.jsonl").decode().splitlines()]
    judgements = by_kind["judgement"]
    assert len(judgements) == min(transcripts.TRACED_JUDGEMENTS, len(judged)) > 0
    for t, j in zip(sorted(judgements, key=lambda t: [str(r["pair_id"]) for r in judged].index(t.info.tags["act.pair_id"])),
                    judged, strict=False):
        (span,) = t.data.spans
        assert span.inputs["messages"][-1]["role"] == "user"  # the judgement prompt the model got
        assert span.outputs == {k: j[k] for k in ("output", "choice", "answer", "correct")}
        assert t.info.tags["act.correct"] == str(j["correct"]).lower()
    assert sorted(run.data.tags["act.traces"].split(",")) == sorted(t.info.trace_id for t in traces)
    assert "eval: traced 3 episodes and" in log


def actjob(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "act_operator.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_actjob_transcript_prints_an_episode_of_a_run(evaluated, tmp_path):
    cfg, _, _ = evaluated
    run_dir = RunDir(tmp_path, "tjob").make()
    status = ACTJobStatus(stages={"eval": StageStatus(phase="Succeeded", outputs=StageOutputs(uri=cfg.output))})
    run_dir.write_state({"name": "tjob", "status": status.model_dump(mode="json", by_alias=True)})
    records = transcripts.read(cfg.output)

    listed = actjob("transcript", "tjob", "--workdir", str(tmp_path), "--list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split("\t")[1] for line in listed.stdout.splitlines()] == [r["episode"] for r in records]

    second = records[1]
    for chosen in (second["episode"], "1"):
        shown = actjob("transcript", "tjob", "--workdir", str(tmp_path), "--episode", chosen)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == transcripts.format_episode(second)
    text = shown.stdout
    assert text.startswith(f"episode {second['episode']} (dev)") and second["goal"] in text
    for s in second["turns"]:
        assert f"--- step {s['step']} ---" in text and all(w in text for w in s["output"].split())
        assert f"action: {s['action'] if s['action'] is not None else '(none'}" in text

    wrong = actjob("transcript", "tjob", "--workdir", str(tmp_path), "--split", "test")
    assert wrong.returncode == 1 and "--split" in wrong.stderr and "dev" in wrong.stderr
    missing = actjob("transcript", "tjob", "--workdir", str(tmp_path), "--episode", "nope")
    assert missing.returncode == 1 and "--episode" in missing.stderr and second["episode"] in missing.stderr


def test_traces_mlflow_did_not_take_are_replayed_once(evaluated, tmp_path):
    """A stage whose MLflow does not answer keeps its traces in its tracking record; the replay
    makes them under the replayed run, once, and an interrupted replay's traces go with its run."""
    from mlflow import MlflowClient
    from services import free_ports

    from act_trainer.config import TrackingConfig
    from act_trainer.tracking import records, replay, stage_run

    cfg, report, _ = evaluated
    episodes = transcripts.read(cfg.output)[:2]
    judged = [{**json.loads(store.read_bytes(f"{cfg.output}/judgements.jsonl").decode().splitlines()[0]),
               "prompt": [{"role": "user", "content": "Which action is better, 1 or 2?"}]}]
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    offline = cfg.model_copy(update={"output": (tmp_path / "out").as_uri(), "tracking": TrackingConfig(
        uri=dead, experiment="itest", parent_run_id=report["mlflow_run_id"])})
    with stage_run(offline) as run:
        assert run.offline and run.log_traces(episodes, judged) is None
    [record] = records(offline.output)
    assert [e["episode"] for e in record["traces"]["episodes"]] == [e["episode"] for e in episodes]

    client = MlflowClient(cfg.tracking.uri)
    parent = cfg.tracking.parent_run_id
    experiment_id = client.get_run(parent).info.experiment_id
    interrupted = client.create_run(experiment_id, tags={"act.replay_of": record["source"]}).info.run_id
    transcripts.log_traces(client, experiment_id, interrupted, episodes[:1], [])
    replayed = replay(cfg.tracking.uri, record, parent, experiment_id)
    again = replay(cfg.tracking.uri, record, parent, experiment_id)
    traces = client.search_traces(locations=[experiment_id], run_id=replayed, max_results=100)
    assert again == replayed != interrupted and len(traces) == len(episodes) + len(judged)
    assert sorted(t.info.tags["act.kind"] for t in traces) == ["episode", "episode", "judgement"]
    steps = {e["episode"]: len(e["turns"]) for e in episodes}
    assert {t.info.tags["act.episode"]: len(t.data.spans) - 1 for t in traces if t.info.tags["act.kind"] == "episode"
            } == steps  # a span per step under the episode's
    assert sorted(client.get_run(replayed).data.tags["act.traces"].split(",")) == sorted(t.info.trace_id
                                                                                        for t in traces)
    assert not client.search_traces(locations=[experiment_id], run_id=interrupted, max_results=10)
