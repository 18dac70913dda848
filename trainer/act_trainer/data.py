"""Expert trajectories, agent states and contrast pairs, and how they are stored.

Trajectory format (JSONL, one episode per line; parquet with the same columns also works):
    {"env": "scienceworld", "task": "boil", "variation": 3, "split": "train",
     "goal": "Your task is to boil water. ...",
     "steps": [{"observation": "...", "action": "look around", "admissible": null}, ...],
     "success": true, "score": 100.0}
`observation` is what the agent saw before taking `action`; `admissible` is the list of
valid actions at that point where the environment can list them cheaply, else null (collect then
asks the environment at the restored state where it can list them: ScienceWorld).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

from act_trainer.errors import InputError, MissingInput


@dataclass
class Step:
    observation: str
    action: str
    admissible: list[str] | None = None


@dataclass
class Trajectory:
    env: str
    task: str
    goal: str
    steps: list[Step]
    variation: int | str = 0
    split: str = "train"
    success: bool = True
    score: float | None = None

    @property
    def episode_id(self) -> str:
        return f"{self.env}/{self.split}/{self.task}/{self.variation}"

    @classmethod
    def from_dict(cls, d: dict) -> Trajectory:
        missing = [k for k in ("env", "task", "goal", "steps") if k not in d]
        if missing:
            raise InputError(f"trajectory record lacks field(s) {missing}; see the trajectory format in docs/actjob.md#expert-trajectory-format")
        try:
            steps = [Step(s["observation"], s["action"], s.get("admissible")) for s in d["steps"]]
        except (KeyError, TypeError) as e:
            raise InputError(f"trajectory record: a step lacks {e} or is not a mapping; each step is "
                             "{observation, action, admissible}; see the trajectory format in docs/actjob.md#expert-trajectory-format") from None
        known = {k: d[k] for k in ("variation", "split", "success", "score") if k in d and d[k] is not None}
        return cls(env=d["env"], task=d["task"], goal=d["goal"], steps=steps, **known)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class State:
    """What an agent sees when it must act: the goal, recent turns, the observation."""

    episode_id: str
    step: int
    goal: str
    observation: str
    history: list[tuple[str, str]] = field(default_factory=list)  # (action, observation that followed)
    admissible: list[str] | None = None


def last_turns(history: list, n: int) -> list:
    """The last ``n`` turns of ``history`` (a new list; none when ``n`` is 0): what a prompt shows."""
    return history[-n:] if n > 0 else []


def states(traj: Trajectory, history: int) -> Iterator[tuple[State, str]]:
    """Each step of an expert trajectory as (state, expert action)."""
    turns: list[tuple[str, str]] = []
    for i, step in enumerate(traj.steps):
        yield (
            State(traj.episode_id, i, traj.goal, step.observation, last_turns(turns, history),
                  step.admissible),
            step.action,
        )
        nxt = traj.steps[i + 1].observation if i + 1 < len(traj.steps) else ""
        turns.append((step.action, nxt))


def split_episodes(trajs: list[Trajectory], heldout_fraction: float, seed: int):
    """Split by episode (not by state) so held-out pairs never share an episode with training."""
    ids = sorted({t.episode_id for t in trajs})
    random.Random(seed).shuffle(ids)
    n_held = int(round(len(ids) * heldout_fraction))
    if heldout_fraction > 0 and n_held == 0 and len(ids) > 1:
        n_held = 1
    held = set(ids[:n_held])
    return [t for t in trajs if t.episode_id not in held], [t for t in trajs if t.episode_id in held]


# --- serialisation -------------------------------------------------------------------------

def dumps_jsonl(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def loads_trajectories(blob: bytes, name: str = "trajectories") -> list[Trajectory]:
    if blob[:4] == b"PAR1":
        rows = read_parquet(blob)
    else:
        rows = []
        for n, line in enumerate(blob.decode().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{name}: line {n} is not JSON ({e})") from None
    trajs = [Trajectory.from_dict(r) for r in rows]
    if not trajs:
        raise InputError(f"{name}: holds no trajectories")
    return trajs


def pair_record(state: State, expert: str, alternative: str, expert_next: str | None = None,
                alternative_next: str | None = None) -> dict:
    """One contrast pair; `*_next`: the observation after each action, where collect took them
    (stages.collect.recordOutcomes), else None."""
    pid = hashlib.sha1(f"{state.episode_id}|{state.step}|{alternative}".encode()).hexdigest()[:16]
    return {
        "pair_id": pid, "episode_id": state.episode_id, "step": state.step, "goal": state.goal,
        "observation": state.observation,
        "history": [{"action": a, "observation": o} for a, o in state.history],
        "expert_action": expert, "alternative": alternative,
        "admissible": state.admissible,
        "expert_next": expert_next, "alternative_next": alternative_next,
    }


def pair_state(rec: dict, history: int | None = None) -> State:
    """A pair's state; with `history`, only its last `history` turns (what prompts show)."""
    hist = [(h["action"], h["observation"]) for h in (rec.get("history") or [])]
    if history is not None:
        hist = last_turns(hist, history)
    adm = rec.get("admissible")
    return State(rec["episode_id"], int(rec["step"]), rec["goal"], rec["observation"], hist,
                 list(adm) if adm is not None else None)


def write_parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("pair_id", pa.string()), ("episode_id", pa.string()), ("step", pa.int32()), ("goal", pa.string()),
        ("observation", pa.string()),
        ("history", pa.list_(pa.struct([("action", pa.string()), ("observation", pa.string())]))),
        ("expert_action", pa.string()), ("alternative", pa.string()), ("admissible", pa.list_(pa.string())),
        ("expert_next", pa.string()), ("alternative_next", pa.string()),
    ])
    table = pa.Table.from_pylist(rows, schema=schema)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def read_parquet(blob: bytes) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(blob)).to_pylist()


def digest_trajectories(trajs: list[Trajectory]) -> str:
    return "sha256:" + hashlib.sha256(dumps_jsonl(t.to_dict() for t in trajs)).hexdigest()


def load_trajectories(uri: str, field: str, name: str = "expert.jsonl") -> list[Trajectory]:
    """A trajectories file, or every `name` under a prefix (the shards of a collect stage).
    Failures name the config `field` the URI came from."""
    from act_trainer import store

    try:
        files = store.list_uris(uri)
        if files != [uri]:
            files = [f for f in files if f.endswith("/" + name)]
        if not files:
            raise MissingInput(f"{field}: no expert trajectories at {uri} (nor any {name} under it)")
        return [t for f in files for t in loads_trajectories(store.read_bytes(f), name=f)]
    except InputError as e:
        raise InputError(f"{field}: {e}") from None
    except store.StoreError as e:  # an outage or credentials: transient
        raise store.StoreError(f"{field}: cannot read expert trajectories: {e}") from None


def load_pairs(uri: str, name: str = "train.parquet") -> list[dict]:
    """The contrast pairs of a collect stage's output: every `name` under `uri` (its shards)."""
    from act_trainer import store

    files = [u for u in store.list_uris(uri) if u.endswith("/" + name)]
    if not files:
        raise MissingInput(f"pairs: no {name} under {uri}; point it at a collect stage's output")
    return [row for f in files for row in read_parquet(store.read_bytes(f))]


def manifest_digest(uri: str) -> str:
    """The digest in the manifest of a stage's output at `uri` (its lineage), or "unknown"."""
    from act_trainer import store
    from act_trainer.manifest import read_manifest

    try:
        return read_manifest(uri)["digest"]
    except (store.StoreError, KeyError, ValueError):
        return "unknown"
