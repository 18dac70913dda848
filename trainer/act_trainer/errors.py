"""The exit-code contract of stage programs, and the errors that choose the code.

  0  done: outputs and _MANIFEST.json written, result in the termination log
  2  permanent: bad input or configuration (invalid config, unknown split or task, a missing or
     ill-formed expert file or contrast pairs, a model URI without config.json, an environment
     that is not installed); no retry can fix it, so the executor fails the ACTJob at once
  1  anything else: transient (a crash, OOM, a storage or server outage); retried per maxRetries

Import-light (no torch): the operator reads EXIT_PERMANENT too.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_TRANSIENT = 1
EXIT_PERMANENT = 2


class PermanentError(Exception):
    """A failure no retry can fix: bad input or configuration. Mixed into concrete error classes."""


class TransientError(Exception):
    """A failure a retry may fix, even where its class is otherwise permanent (e.g. a server that
    does not answer yet)."""


class InputError(PermanentError, ValueError):
    """An input (expert file, contrast pairs, split, setting) that is ill-formed or does not fit."""


class MissingInput(PermanentError, FileNotFoundError):
    """An input the config names is not there."""


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, PermanentError) and not isinstance(exc, TransientError)


def exit_code(exc: BaseException) -> int:
    return EXIT_PERMANENT if is_permanent(exc) else EXIT_TRANSIENT
