"""The node's pod network: one Linux bridge with the node's address, and per pod a network
namespace joined to it by a veth pair, with one address of the node's /24. Nothing is routed
beyond the /24: pods reach each other and the node (host) address only.

Every name starts with PREFIX so that leftovers of a crashed agent can be found and removed.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess

PREFIX = "actk"
BRIDGE = f"{PREFIX}br0"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def available() -> str | None:
    """None when this process may create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "the node agent needs root (network and mount namespaces)"
    missing = [tool for tool in ("ip", "unshare", "mount", "umount") if not shutil.which(tool)]
    if missing:
        return f"the node agent needs {', '.join(missing)} (iproute2, util-linux)"
    name = f"{PREFIX}-probe-{os.getpid()}"
    r = ip("netns", "add", name, check=False)
    if r.returncode:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    ip("netns", "del", name, check=False)
    return None


def kill_processes(ns: str) -> None:
    """SIGKILL whatever still runs in network namespace `ns` (deleting it would not)."""
    for pid in ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


class Network:
    def __init__(self, subnet: str):
        self.net = ipaddress.ip_network(subnet)
        hosts = list(self.net.hosts())
        self.gateway = str(hosts[0])  # the node's (host's) address on the bridge
        self._free = [str(h) for h in hosts[1:]]
        self._used: dict[str, str] = {}  # netns name -> ip

    def cleanup_leftovers(self) -> None:
        """Remove namespaces, veths and the bridge a previous agent left behind."""
        for line in ip("netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith(PREFIX + "-"):
                kill_processes(name)
                ip("netns", "del", name, check=False)
        for line in ip("-o", "link", "show", check=False).stdout.splitlines():
            dev = line.split(":")[1].strip().split("@")[0]
            if dev.startswith(PREFIX):
                ip("link", "del", dev, check=False)

    def up(self) -> None:
        self.cleanup_leftovers()
        ip("link", "add", BRIDGE, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.net.prefixlen}", "dev", BRIDGE)
        ip("link", "set", BRIDGE, "up")

    def down(self) -> None:
        for ns in list(self._used):
            self.remove(ns)
        ip("link", "del", BRIDGE, check=False)
        self.cleanup_leftovers()

    def add(self, ns: str) -> str:
        """Create network namespace `ns` with eth0 on the bridge; return its address."""
        addr = self._free.pop(0)
        self._used[ns] = addr
        veth = PREFIX + ns[len(PREFIX) + 1:][:10]  # host side, at most 15 characters
        try:
            ip("netns", "add", ns)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("link", "set", veth, "master", BRIDGE, "up")
            ip("-n", ns, "addr", "add", f"{addr}/{self.net.prefixlen}", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as e:
            self.remove(ns)
            raise RuntimeError(f"pod network {ns}: {e.stderr.strip()}") from e
        return addr

    def remove(self, ns: str) -> None:
        kill_processes(ns)
        ip("netns", "del", ns, check=False)  # takes its end of the veth pair, and so the pair, along
        veth = PREFIX + ns[len(PREFIX) + 1:][:10]
        ip("link", "del", veth, check=False)
        addr = self._used.pop(ns, None)
        if addr:
            self._free.append(addr)
