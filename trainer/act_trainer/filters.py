"""The contrast-pair filter rules of METHOD.md, as one pure function with visible counts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from act_trainer.envs.base import Branch, alike
from act_trainer.prompts import normalize_action, parse_action

RULES = ("unparseable", "same_as_expert", "inadmissible", "duplicate", "over_limit", "as_good_as_expert",
         "unverifiable")


@dataclass
class FilterReport:
    sampled: int = 0
    kept: int = 0
    removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RULES, 0))

    def add(self, other: FilterReport) -> None:
        self.sampled += other.sampled
        self.kept += other.kept
        for rule, n in other.removed.items():
            self.removed[rule] += n


def filter_alternatives(
    expert: str,
    samples: list[str],
    admissible: list[str] | None,
    max_alternatives: int,
    filter_inadmissible: bool = True,
    verify: Callable[[str], str | None] | None = None,
) -> tuple[list[str], FilterReport]:
    """Keep at most `max_alternatives` distinct parseable actions that differ from the expert's
    (and, where the environment lists admissible actions, are admissible). `verify(action)`, when
    given, is asked last, for candidates that would be kept (the costly rule: it runs the
    environment): it names the rule that drops the candidate ("as_good_as_expert", or
    "unverifiable" where the state could not be restored), and a later candidate may take its
    place; None keeps it."""
    report = FilterReport(sampled=len(samples))
    expert_norm = normalize_action(expert)
    allowed = {normalize_action(a) for a in admissible} if (admissible is not None and filter_inadmissible) else None
    kept, seen = [], set()
    for sample in samples:
        action = parse_action(sample)
        norm = normalize_action(action) if action else ""
        if not norm:
            rule = "unparseable"
        elif norm == expert_norm:
            rule = "same_as_expert"
        elif allowed is not None and norm not in allowed:
            rule = "inadmissible"
        elif norm in seen:
            rule = "duplicate"
        elif len(kept) >= max_alternatives:
            rule = "over_limit"
        elif verify is not None and (dropped := verify(action)):
            seen.add(norm)
            rule = dropped
        else:
            seen.add(norm)
            kept.append(action)
            continue
        report.removed[rule] += 1
    report.kept = len(kept)
    return kept, report


def as_good_as_expert(expert: Branch, alternative: Branch) -> str | None:
    """Why an alternative does as well as the expert's action from the same state, by the
    environment's own measure, or None when it does worse (a valid contrast pair):
    it wins; it gains more score; it gains as much, when the expert's action gained any (two
    steps that both gain nothing are not judged equal by score); or it leads to the same next
    observation (text up to the order of its lines, score, and admissible actions where the
    environment lists them)."""
    exp, alt = expert.next, alternative.next
    if alt.won:
        return "wins"
    if alternative.score_change > expert.score_change:
        return "gains more score"
    if expert.score_change > 0 and alternative.score_change == expert.score_change:
        return "gains as much score"
    if (alike(alt.text, exp.text) and alt.score == exp.score and alt.done == exp.done
            and (alt.admissible is None or exp.admissible is None or sorted(alt.admissible) == sorted(exp.admissible))):
        return "same next state"
    return None
