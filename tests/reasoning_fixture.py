"""The reasoning fixture's known answers (tests/fixtures/reasoning) and a scripted engine that gives
them: what the unit and integration tests of act_trainer.reasoning grade."""

from __future__ import annotations

from pathlib import Path

from act_trainer import reasoning

FIXTURES = Path(__file__).parent / "fixtures" / "reasoning"
MATH = FIXTURES / "math500.jsonl"
GPQA = FIXTURES / "gpqa-diamond.jsonl"

# fixture question -> (completions graded right: equivalent forms, boxed or not; completions graded wrong)
MATH_ANSWERS = {
    "fixture/frac.json": (["So $1 \\div 2 = \\boxed{0.5}$.", "The answer is \\boxed{\\frac{1}{2}}",
                           "Final answer: 1/2", "<think>half of one</think>\\boxed{\\dfrac12}"],
                          ["\\boxed{\\frac{1}{3}}", "\\boxed{2}", "<think>it is \\boxed{0.5}"]),
    "fixture/squares.json": (["9 + 16 = \\boxed{25}", "The answer is $25$."], ["\\boxed{24}", "\\boxed{7}"]),
    "fixture/root.json": (["\\boxed{5\\sqrt{2}}", "\\boxed{\\sqrt{50}}", "\\boxed{5 \\cdot \\sqrt 2}"],
                          ["\\boxed{2\\sqrt{5}}", "\\boxed{25\\sqrt{2}}"]),
    "fixture/linear.json": (["$x = \\boxed{4}$", "\\boxed{4.0}"], ["\\boxed{7}"]),
    "fixture/quarter.json": (["\\boxed{\\frac{1}{4}}", "\\boxed{0.25}", "\\boxed{1/4}"], ["\\boxed{\\frac{1}{5}}"]),
    "fixture/pair.json": (["\\boxed{(3, 2)}", "\\boxed{(3,2)}"], ["\\boxed{(2, 3)}"]),
    "fixture/degrees.json": (["\\boxed{180}", "\\boxed{180^\\circ}"], ["\\boxed{90}", "\\boxed{360}"]),
    "fixture/binomial.json": (["\\boxed{10}"], ["\\boxed{20}"]),
    "fixture/expand.json": (["\\boxed{x^2 + 2x + 1}", "\\boxed{1 + 2x + x^2}", "\\boxed{(x+1)^2}"],
                            ["\\boxed{x^2 + 1}"]),
    "fixture/hexagon.json": (["\\boxed{720}", "The sum is $720^\\circ$."], ["\\boxed{540}"]),
}



class ScriptedEngine:
    """Known completions behind the engine interface: in run r (told by its seed), the first
    RIGHT[r] questions get a right answer in some format, the others a wrong one."""

    name = "scripted"
    RIGHT = [8, 6, 7]

    def __init__(self, benchmark, questions, seed=0):
        self.benchmark, self.questions = benchmark, questions
        self.runs = {reasoning.run_seed(seed, r): r for r in range(len(self.RIGHT))}
        self.calls = []

    def generate(self, prompts, *, n, temperature, top_p=1.0, max_new_tokens=32, seed=None, **_):
        run = self.runs[seed]
        self.calls.append((len(prompts), n, temperature, max_new_tokens))
        outs = []
        for i, (p, q) in enumerate(zip(prompts, self.questions, strict=True)):
            right = i < self.RIGHT[run]
            if self.benchmark == "math500":
                outs.append([MATH_ANSWERS[q.id][0 if right else 1][0]])
            else:
                content = p[0]["content"]
                letter = next(ln[0] for ln in content.splitlines() if ln[1:3] == ") " and ln[3:] == q.answer)
                if not right:
                    letter = "ABCD"[("ABCD".index(letter) + 1) % 4]
                outs.append([["Answer: {}", "**{}**", "the answer is {}"][i % 3].format(
                    letter if i % 3 != 2 else letter.lower())])
        return outs
