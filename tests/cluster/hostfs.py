"""Mount points directly under / that the host lacks (a pod mounting a volume at /data).

The launcher creates a missing mount point in an overlay of its nearest existing parent, so
the host's tree is untouched; but an overlay of / itself would hide every other mount. So
the agent creates such a top-level directory on the host while pods need it, and removes it
(empty) when the last of them ends, or at the next start after a crash (STATE lists them).
"""

from __future__ import annotations

import json
import os
import threading

STATE = "/run/act-node-agent.mountpoints"


def top_level(path: str) -> str:
    return "/" + path.strip("/").split("/")[0]


class RootMountPoints:
    def __init__(self, state: str = STATE):
        self.state = state
        self.users: dict[str, set[str]] = {}
        self.lock = threading.Lock()

    def cleanup_leftovers(self) -> None:
        try:
            with open(self.state) as f:
                paths = json.load(f)
        except (OSError, ValueError):
            paths = []
        for p in paths:
            try:
                os.rmdir(p)
            except OSError:
                pass
        self._save()

    def acquire(self, uid: str, targets: list[str]) -> None:
        with self.lock:
            for t in targets:
                top = top_level(t)
                if top in self.users or not os.path.lexists(top):
                    os.makedirs(top, exist_ok=True)
                    self.users.setdefault(top, set()).add(uid)
            self._save()

    def release(self, uid: str) -> None:
        with self.lock:
            for top in list(self.users):
                self.users[top].discard(uid)
                if not self.users[top]:
                    del self.users[top]
                    try:
                        os.rmdir(top)
                    except OSError:
                        pass
            self._save()

    def _save(self) -> None:
        with open(self.state, "w") as f:
            json.dump(sorted(self.users), f)
