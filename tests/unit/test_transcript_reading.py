"""Eval transcripts read back from a (sharded) output, chosen and printed (act_trainer.transcripts)."""

from __future__ import annotations

import pytest

from act_trainer import transcripts
from act_trainer.envs.base import Observation


def played(split: str, episode: str, won: bool, outputs: list[tuple[str, str | None]]) -> dict:
    turns, score = [], 0.0
    for n, (output, action) in enumerate(outputs, 1):
        after = Observation(text=f"after {n}", goal="find a living thing", score=score + (10 if action else 0),
                            done=n == len(outputs), won=won and n == len(outputs))
        turns.append(transcripts.step(n, f"seen {n}", output, action, score, after))
        score = after.score
    result = {"episode": episode, "won": won, "score": score, "steps": len(outputs),
              "malformed": sum(a is None for _, a in outputs)}
    return transcripts.episode(split, result, "find a living thing", turns)


@pytest.fixture
def sharded(tmp_path):
    """An eval output of two shards (each writes its own transcripts.jsonl), shard 1 listed first on disk."""
    shards = {1: [played("dev", "dev:1", False, [("<think>no</think>", None)])],
              0: [played("dev", "dev:0", True, [("<think>look first</think> look around", "look around"),
                                                 ("<think>it is the cat</think> focus on cat", "focus on cat")]),
                  played("test", "test:0", False, [("garbage", None)])]}
    for index, records in shards.items():
        shard = tmp_path / f"shard-{index:05d}"
        shard.mkdir()
        (shard / transcripts.TRANSCRIPTS).write_text(transcripts.to_jsonl(records))
    (tmp_path / "results.json").write_text("{}")  # other files of the output are not transcripts
    return tmp_path


def test_read_takes_every_shard_in_shard_order(sharded):
    records = transcripts.read(f"file://{sharded}")
    assert [r["episode"] for r in records] == ["dev:0", "test:0", "dev:1"]
    assert transcripts.listing(records).splitlines()[0] == "dev\tdev:0\twon\tscore 20\t2 steps"


def test_choose_by_id_position_and_split(sharded):
    records = transcripts.read(str(sharded))
    assert transcripts.choose(records, None, None)["episode"] == "dev:0"  # the first split's first episode
    assert transcripts.choose(records, "dev", "dev:1")["episode"] == "dev:1"
    assert transcripts.choose(records, "dev", "1")["episode"] == "dev:1"
    assert transcripts.choose(records, "test", None)["episode"] == "test:0"
    with pytest.raises(transcripts.NoTranscript, match=r"--split: .*'val'.*dev, test"):
        transcripts.choose(records, "val", None)
    with pytest.raises(transcripts.NoTranscript, match=r"--episode: 'dev:7'.*dev:0, dev:1"):
        transcripts.choose(records, None, "dev:7")
    with pytest.raises(transcripts.NoTranscript, match="episodes is 0"):
        transcripts.choose([], None, None)


def test_an_episode_prints_each_steps_observation_reasoning_action_and_reward(sharded):
    won, lost = transcripts.choose(transcripts.read(str(sharded)), "dev", "dev:0"), played(
        "dev", "dev:1", False, [("", None)])
    text = transcripts.format_episode(won)
    assert text.splitlines()[:2] == ["episode dev:0 (dev): won, score 20, 2 steps, 0 malformed",
                                     "goal: find a living thing"]
    step2 = text[text.index("--- step 2 ---"):]
    assert step2.splitlines() == ["--- step 2 ---", "  observation:", "    seen 2", "  model output:",
                                  "    <think>it is the cat</think> focus on cat", "  action: focus on cat",
                                  "  reward: +10 (score 20), done"]
    assert "action: (none: no action could be parsed from the output)" in transcripts.format_episode(lost)
    assert "  model output:\n    (empty)\n" in transcripts.format_episode(lost)
