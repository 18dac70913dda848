"""Why a stage's process ended, in one short line a person can read: who (the pod, or the local
process), the exit code, the signal that killed it (137 is SIGKILL), OOMKilled where the
container runtime says so, and the last error line of its log rather than its tail.

A stage that fails reports its own error (the termination message's JSON); one that is killed
(SIGKILL, out of memory) reports nothing, and Kubernetes' FallbackToLogsOnError gives the log's
last 2 KB instead: mostly tqdm bars and library warnings. Pure: both executors use it, the
cluster's (kube.observe, on the pod's termination state) and `actjob run`'s (a process's
return code and log).

    termination.reason(137, log_tail, who="pod demo-collect-1-0-x2b4c", container_reason="Error")
    -> "pod demo-collect-1-0-x2b4c: killed by SIGKILL (exit code 137); last error: RuntimeError: boom"
"""

from __future__ import annotations

import re
import signal as signals

LINE_LIMIT = 300  # characters of the last error line kept (a line is cut, never the who/how)

# a progress bar: tqdm's `42%|####      | 84/200 [00:05<00:07, 16.1it/s]`, its no-total form
# `84it [00:05, 16.1it/s]`, and the stages' own `act-progress ...` records
_PROGRESS = re.compile(r"\d+%\||\[\d+:\d\d(:\d\d)?(<[\d:?]+)?,[^\]]*\]|^act-progress ")
# a Python warning (`path.py:12: FutureWarning: ...`, its source line follows indented) or a
# logged one
_WARNING = re.compile(r"\b\w*Warning\b:|\bWARNING\b|^\s*warnings\.warn\(")
# a line that says what went wrong: an exception (`torch.OutOfMemoryError: ...`), an error log
# line, the kernel's `Killed`, `... failed ...`
_ERROR = re.compile(r"^\s*[\w.]*(Error|Exception|Exit|Interrupt)\b|\b(ERROR|FATAL|CRITICAL)\b|\bfailed\b|"
                    r"\b[Oo]ut of memory\b|^Killed\b")
_NOT_THE_ERROR = re.compile(r"^\s*(Traceback \(most recent call last\)|File \"|During handling of|The above exception)")


def _lines(log_tail: str) -> list[str]:
    """The log's lines, a carriage return ending a line too (tqdm redraws its bar with \\r)."""
    return [line.strip() for line in re.split(r"[\r\n]+", log_tail or "")]


def _meaningful(log_tail: str) -> list[str]:
    """The lines of a log tail that are neither progress bars nor warnings (nor blank)."""
    kept, after_warning = [], False
    for line in _lines(log_tail):
        if not line:
            continue
        if _WARNING.search(line):
            after_warning = True
            continue
        if after_warning and line.startswith(("warnings.warn", "return ", "super()")):
            continue  # the source line Python prints under a warning
        after_warning = False
        if not _PROGRESS.search(line):
            kept.append(line)
    return kept


def _cut(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[:limit - 1] + "…"


def last_error_line(log_tail: str, limit: int = LINE_LIMIT) -> str | None:
    """The last line of a log tail that says what went wrong (an exception, an error log line,
    `Killed`), cut to `limit` characters; None when none does."""
    errors = [line for line in _meaningful(log_tail) if _ERROR.search(line) and not _NOT_THE_ERROR.match(line)]
    return _cut(errors[-1], limit) if errors else None


def last_line(log_tail: str, limit: int = LINE_LIMIT) -> str | None:
    """The last line of a log tail that is neither a progress bar nor a warning; None if none is."""
    kept = _meaningful(log_tail)
    return _cut(kept[-1], limit) if kept else None


def killed_by(exit_code: int | None, signal: int | None = None) -> str | None:
    """The signal's name (SIGKILL) when the process was killed by one: `signal` if the runtime gave
    it, a negative return code (Python's subprocess), or a shell-style exit code 128 + N."""
    number = signal or (-exit_code if exit_code is not None and exit_code < 0 else None)
    if number is None and exit_code is not None and 128 < exit_code <= 128 + 64:
        number = exit_code - 128
    try:
        return signals.Signals(number).name if number else None
    except ValueError:
        return None


def ended(exit_code: int | None, *, who: str = "", container_reason: str | None = None,
          signal: int | None = None) -> str:
    """How it ended: `pod X: OOMKilled, out of memory (exit code 137, SIGKILL; ...)`, `pod X: killed by
    SIGTERM (exit code 143)`, `process 42: exit code 1`."""
    code = "no exit code" if exit_code is None else f"exit code {exit_code}"
    name = killed_by(exit_code, signal)
    if container_reason == "OOMKilled":
        how = f"OOMKilled, out of memory ({code}{', ' + name if name else ''}; resources.memory sets the limit)"
    elif name:
        how = f"killed by {name} ({code})"
    else:
        how = code
    return f"{who}: {how}" if who else how


def reason(exit_code: int | None, log_tail: str = "", *, who: str = "", container_reason: str | None = None,
           signal: int | None = None, error: str | None = None) -> str:
    """One line on why it ended: how (ended), then what it said: `error`, the program's own report
    (kept whole), else the last error line of its log tail, else the tail's last line that is neither
    a progress bar nor a warning."""
    how = ended(exit_code, who=who, container_reason=container_reason, signal=signal)
    if error and error.strip():
        return f"{how}: {error.strip()}"
    if said := last_error_line(log_tail):
        return f"{how}; last error: {said}"
    if said := last_line(log_tail):
        return f"{how}; the log ends: {said}"
    return how
