"""An episode in progress, as eval plays it and online RL (stages/online_rl.py) plays it: the prompt
for the next turn (the goal, the last environment.history turns, the observation), a turn taken
(a malformed one costs a step and changes nothing), when it is done (won, failed, or
environment.maxSteps turns), and its result record. `cfg` is anything with `env` (an
EnvironmentConfig): eval's config, or online RL's play settings."""

from __future__ import annotations

from act_trainer import data, transcripts
from act_trainer.prompts import action_prompt


class LiveEpisode:
    """An episode in progress on one environment instance."""

    def __init__(self, env, episode: str, obs):
        self.env, self.episode, self.obs = env, episode, obs
        self.goal, self.history, self.malformed, self.steps = obs.goal, [], 0, 0
        self.turns: list[dict] = []  # each step as the model saw and played it (transcripts)

    def prompt(self, cfg) -> list[dict]:
        # prompts do not show admissible actions: don't ask for them (ScienceWorld enumerates them)
        return action_prompt(data.State(self.episode, self.steps, self.goal, self.obs.text,
                                        data.last_turns(self.history, cfg.env.history)))

    def act(self, action: str | None, output: str = "", started_ns: int | None = None) -> None:
        seen, score = self.obs.text, self.obs.score
        self.steps += 1
        if action is None:  # a malformed turn costs a step and changes nothing
            self.malformed += 1
            self.history.append(("(no action)", ""))
        else:
            self.obs = self.env.step(action)
            self.history.append((action, self.obs.text))
        self.turns.append(transcripts.step(self.steps, seen, output, action, score, self.obs, started_ns))

    def done(self, cfg) -> bool:
        return self.obs.done or self.steps >= cfg.env.max_steps

    def result(self) -> dict:
        return {"episode": self.episode, "won": bool(self.obs.won), "score": self.obs.score, "steps": self.steps,
                "malformed": self.malformed}
