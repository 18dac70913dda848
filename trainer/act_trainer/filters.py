"""The contrast-pair filter rules of METHOD.md, as one pure function with visible counts."""

from __future__ import annotations

from dataclasses import dataclass, field

from act_trainer.prompts import normalize_action, parse_action

RULES = ("unparseable", "same_as_expert", "inadmissible", "duplicate", "over_limit")


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
) -> tuple[list[str], FilterReport]:
    """Keep at most `max_alternatives` distinct parseable actions that differ from the expert's
    (and, where the environment lists admissible actions, are admissible)."""
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
        else:
            seen.add(norm)
            kept.append(action)
            continue
        report.removed[rule] += 1
    report.kept = len(kept)
    return kept, report
