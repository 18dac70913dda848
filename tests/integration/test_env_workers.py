"""Environments in worker processes (envs/workers.py), on the real TextWorldExpress simulator: eval's
loop over workers gets what the sequential loop gets in-process, an error raised in a worker comes
back as itself with the worker's traceback, a worker that dies is a clear error (not a hang), and
workers end with the process that started them."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("textworld_express")

from env_fixtures import needs_java  # noqa: E402
from reference_play import sequential_play  # noqa: E402

from act_trainer.config import EnvironmentConfig, EvalConfig, JobRef  # noqa: E402
from act_trainer.envs import EnvError, make_env  # noqa: E402
from act_trainer.envs.workers import EnvPool, WorkerDied, WorkerTraceback  # noqa: E402
from act_trainer.stages import evaluate  # noqa: E402

pytestmark = [pytest.mark.integration, needs_java]

ENV = EnvironmentConfig(name="textworld-express", game="twc", game_params="numLocations=1,numItemsToPutAway=2",
                        max_steps=6, history=2)
# twc actions; "take X" for an object the observation shows (it scores), the rest change little
ACTIONS = ["look around", "inventory", "take {}", "take {}", "open fridge", "move south"]
OBJECT = re.compile(r"(?:There is also|You also see) an? ([a-z ]+?)\.")


class ScriptedEngine:
    """A deterministic policy behind the engine interface (the output a function of the prompt, as
    a greedy model's is); one output in seven is unreadable. `on_call` runs before each generate."""

    name = "scripted"

    def __init__(self, on_call=None):
        self.calls, self.on_call = 0, on_call

    def generate(self, prompts, *, n, temperature, max_new_tokens=32, **_):
        self.calls += 1
        if self.on_call:
            self.on_call(self.calls)
        outs = []
        for p in prompts:
            h = int(hashlib.sha256(repr(p).encode()).hexdigest(), 16)
            seen = OBJECT.findall(p[-1]["content"]) or ["nothing"]
            action = ACTIONS[h % len(ACTIONS)].format(seen[h % len(seen)])
            outs.append([f"<action>{action}</action>" if h % 7 else "no idea"])
        return outs


def eval_config() -> EvalConfig:
    return EvalConfig(job=JobRef(name="t", uid="u"), output="file:///tmp/unused", model="tiny://qwen3-tiny",
                      env=ENV, max_new_tokens=8)


@pytest.fixture(scope="module")
def pool():
    with EnvPool(ENV, 3) as p:
        yield p


def test_workers_play_as_the_sequential_loop(pool):
    cfg, engine = eval_config(), ScriptedEngine()
    local = make_env(ENV)
    try:
        episodes = local.episodes("dev")[:7]
        reference = [sequential_play(local, engine, ep, cfg) for ep in episodes]
    finally:
        local.close()
    assert len({(r["steps"], r["score"]) for r in reference}) > 1 and any(r["malformed"] for r in reference)
    assert sum(r["steps"] - r["malformed"] for r in reference) > 10  # the simulator stepped
    pids = [w.pid for w in pool.workers]
    assert len(set(pids)) == 3 and os.getpid() not in pids
    assert evaluate.play_many(pool.workers, engine, episodes, cfg) == reference
    assert evaluate.play_many(pool.workers, engine, episodes[:4], cfg) == reference[:4]
    assert [w.pid for w in pool.workers] == pids  # the same workers, reused across episodes and calls


def test_worker_errors_come_back_as_themselves(pool):
    worker = pool.workers[0]
    with pytest.raises(EnvError, match="is not FOLD:SEED") as err:
        worker.reset("nonsense")
    assert isinstance(err.value.__cause__, WorkerTraceback)
    assert "textworld_express.py" in str(err.value.__cause__)  # where in the worker it was raised
    assert any("textworld-express environment's worker 0" in n for n in err.value.__notes__)
    with pytest.raises(EnvError, match="before reset"):
        make_env(ENV).step("look around")  # the same error in-process ...
    assert worker.reset("dev:10001").text  # ... and the worker goes on serving


def test_a_worker_that_dies_mid_eval_is_a_clear_error_not_a_hang():
    cfg = eval_config()
    with EnvPool(ENV, 2) as pool:
        victim = pool.workers[1]
        pid = victim.pid

        def kill_on_third_round(calls: int) -> None:
            if calls == 3:
                os.kill(pid, signal.SIGKILL)

        t = time.monotonic()
        with pytest.raises(WorkerDied) as err:
            evaluate.play_many(pool.workers, ScriptedEngine(kill_on_third_round), [f"dev:{10000 + i}" for i in range(4)],
                               cfg)
        assert time.monotonic() - t < 60
        msg = str(err.value)
        assert "textworld-express environment's worker 1" in msg and f"pid {pid}" in msg
        assert "killed by SIGKILL" in msg and ("step(" in msg or "reset(" in msg)
        assert victim.reset("dev:10002").text  # a closed or dead worker starts afresh on its next use
        assert victim.pid != pid


def test_a_bad_setting_fails_the_pool_with_the_adapters_error():
    bad = EnvironmentConfig(name="textworld-express", game="no-such-game")
    with pytest.raises(EnvError, match="environment.game: unknown TextWorldExpress game 'no-such-game'"):
        EnvPool(bad, 2)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    children: dict[int, list[int]] = {}
    for child, parent in zip(out[::2], out[1::2], strict=True):
        children.setdefault(int(parent), []).append(int(child))
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_and_their_jvms_end_with_the_stage_process(how):
    """A stage process that is killed (no handler runs) or stopped takes its workers and their JVMs
    with it."""
    script = textwrap.dedent(f"""
        import sys, time
        from act_trainer.config import EnvironmentConfig
        from act_trainer.envs.workers import EnvPool
        pool = EnvPool(EnvironmentConfig(name="textworld-express", game_params={ENV.game_params!r}), 2)
        for w in pool.workers:
            w.reset("dev:10000")  # starts each worker's JVM
        print("ready", flush=True)
        time.sleep(600)
    """)
    stage = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    try:
        assert stage.stdout.readline().strip() == "ready"
        started = _descendants(stage.pid)
        assert len(started) >= 5  # the forkserver, two workers and their JVMs
        stage.send_signal(how)
        stage.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in started if _alive(p)], "processes outlived the stage process"
    finally:
        if stage.poll() is None:
            os.killpg(stage.pid, signal.SIGKILL)


def test_the_eval_stage_plays_its_episodes_on_workers(tmp_path):
    """The eval stage as its own process (as a pod runs it): parallelEpisodes > 1 plays on a pool of
    workers, which end with the stage."""
    import json

    from act_operator.local import stage_command
    from act_trainer import store

    cfg = EvalConfig(job=JobRef(name="t", uid="u"), output=f"file://{tmp_path}/eval", model="tiny://qwen3-tiny",
                     env=ENV, splits=["dev"], episodes=3, parallel_episodes=3, action_states=0, judge_pairs=0,
                     max_new_tokens=8)
    config = tmp_path / "eval.json"
    config.write_text(cfg.model_dump_json())
    result = tmp_path / "eval.result"
    proc = subprocess.run(stage_command(cfg, config), env={**os.environ, "ACT_TERMINATION_LOG": str(result)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(result.read_text())
    episodes = json.loads(store.read_bytes(f"{cfg.output}/episodes.json"))["dev"]
    assert [e["episode"] for e in episodes] == ["dev:10000", "dev:10001", "dev:10002"]
    assert report["metrics"]["dev/episodes"] == 3
    assert "3 episodes at once, each environment in a worker process" in proc.stdout + proc.stderr
    assert "environment's worker" not in proc.stdout + proc.stderr  # no worker failed


def test_alfworld_on_workers_plays_as_in_process(alfworld_data):
    """ALFWorld, whose instances cannot overlap in one process (alfworld.py's lock): on workers,
    each game in its own process, the episodes go as the sequential loop plays them in-process."""
    pytest.importorskip("alfworld")
    env_cfg = EnvironmentConfig(name="alfworld", data_dir=str(alfworld_data), max_steps=3, history=2)
    cfg = EvalConfig(job=JobRef(name="t", uid="u"), output="file:///tmp/unused", model="tiny://qwen3-tiny",
                     env=env_cfg, max_new_tokens=8)

    class Admissible(ScriptedEngine):  # ALFWorld's own commands, chosen from the prompt
        def generate(self, prompts, *, n, temperature, max_new_tokens=32, **_):
            picks = ["look", "inventory", "go to countertop 1", "go to desk 1", "open fridge 1", "go to fridge 1"]
            return [[f"<action>{picks[int(hashlib.sha256(repr(p).encode()).hexdigest(), 16) % len(picks)]}</action>"]
                    for p in prompts]

    engine = Admissible()
    local = make_env(env_cfg)
    try:
        episodes = (local.episodes("valid_seen") + local.episodes("valid_unseen"))[:4]
        reference = [sequential_play(local, engine, ep, cfg) for ep in episodes]
    finally:
        local.close()
    assert len(episodes) == 4 and sum(r["steps"] for r in reference) == 12
    with EnvPool(env_cfg, 2) as pool:
        assert evaluate.play_many(pool.workers, engine, episodes, cfg) == reference
