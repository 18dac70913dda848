"""Why a stage's pod or process ended, as a person reads it (act_operator.termination). Pure."""

import pytest

from act_operator import termination

WARNINGS = (
    "/usr/local/lib/python3.11/site-packages/transformers/generation/configuration_utils.py:631: FutureWarning: "
    "`do_sample` is set to `False`. However, `temperature` is set to `0.7` -- this flag is only used in "
    "sample-based generation modes.\n  warnings.warn(\n"
    "/usr/local/lib/python3.11/site-packages/torch/utils/checkpoint.py:92: UserWarning: None of the inputs have "
    "requires_grad=True. Gradients will be None\n  warnings.warn(\n")


def tqdm(label: str, done: int, total: int) -> str:
    """tqdm's bar as it reaches a log: redrawn with carriage returns, one line per refresh."""
    bars = []
    for i in range(done - 6, done + 1):
        pct = 100 * i // total
        fill = "█" * (pct // 10) + "▍" + " " * (9 - pct // 10)
        bars.append(f"{label}: {pct:3d}%|{fill}| {i}/{total} [00:{i // 3:02d}<01:{i % 60:02d},  2.6{i % 10}it/s]")
    return "\r".join(bars) + "\n"


# the last 2 KB of a collect pod's log when the kubelet SIGKILLed it (FallbackToLogsOnError)
KILLED_TAIL = (WARNINGS + "2026-05-01 10:00:01,402 INFO act_trainer.stages.collect: sampling 200 states, 4 "
               "alternatives each\n" + tqdm("Sampling", 84, 200) + WARNINGS + tqdm("Sampling", 96, 200)
               + "{'kept': 41, 'sampled': 96}\n" + tqdm("Sampling", 103, 200))[-2048:]

CRASHED_TAIL = (KILLED_TAIL + "Traceback (most recent call last):\n  File \"/app/act_trainer/stages/judge.py\", "
                "line 88, in run\n    trainer.train()\ntorch.OutOfMemoryError: CUDA out of memory. Tried to "
                "allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB of which 1.2 GiB is free.\n"
                + tqdm("Training", 30, 200))


def test_a_sigkilled_pods_log_tail_becomes_pod_exit_code_and_signal():
    assert len(KILLED_TAIL) > 1500 and "it/s]" in KILLED_TAIL[-200:]  # what Kubernetes hands over
    said = termination.reason(137, KILLED_TAIL, who="pod demo-collect-1-0-x2b4c", container_reason="Error")
    assert said.startswith("pod demo-collect-1-0-x2b4c: killed by SIGKILL (exit code 137)")
    assert "it/s" not in said and "%|" not in said and "Warning" not in said and "warnings.warn" not in said
    assert said.endswith("the log ends: {'kept': 41, 'sampled': 96}")  # no error line: the last real line
    assert len(said) < 200, said


def test_the_last_error_line_wins_over_later_progress_bars():
    said = termination.reason(1, CRASHED_TAIL, who="pod demo-judge-1-0-abcde")
    assert said.startswith("pod demo-judge-1-0-abcde: exit code 1; last error: torch.OutOfMemoryError: CUDA out of")
    assert "Traceback" not in said and "Training" not in said
    assert termination.last_error_line("x\n" + "E" * 50 + "Error: " + "y" * 900, limit=100).endswith("…")
    assert len(termination.last_error_line("RuntimeError: " + "y" * 900)) == termination.LINE_LIMIT


def test_an_oomkilled_container_says_so_and_which_field_sets_the_limit():
    # the container status the kubelet reports when the cgroup's OOM killer ended the stage
    said = termination.reason(137, "", who="pod demo-eval-1-0-q9z8w", container_reason="OOMKilled")
    assert said == ("pod demo-eval-1-0-q9z8w: OOMKilled, out of memory (exit code 137, SIGKILL; "
                    "resources.memory sets the limit)")


def test_a_stages_own_error_is_kept_whole_after_how_it_ended():
    error = "InputError: expert.uri: trajectory record lacks 'action'"
    assert termination.reason(2, "", who="pod p", error=error) == f"pod p: exit code 2: {error}"


@pytest.mark.parametrize("code, signal, name", [
    (137, None, "SIGKILL"), (143, None, "SIGTERM"), (-9, None, "SIGKILL"),  # shell style; Python's subprocess
    (1, None, None), (2, None, None), (0, None, None), (None, None, None), (255, None, None),
    (137, 15, "SIGTERM"),  # the runtime's own signal field wins
])
def test_signals_from_exit_codes(code, signal, name):
    assert termination.killed_by(code, signal) == name


def test_a_local_process_killed_by_a_signal():
    assert termination.reason(-9, "Killed\n", who="process 4242") == \
        "process 4242: killed by SIGKILL (exit code -9); last error: Killed"
    assert termination.reason(3) == "exit code 3"
