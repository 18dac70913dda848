"""Runs inside a pod's network namespace (`ip netns exec`) and a fresh mount and UTS
namespace (`unshare --mount --uts`): sets the pod's hostname, gives it its own /dev, mounts
its volumes, hosts file, resolv.conf and termination-message file, then execs the container
command. Standard library only; the spec is a JSON file written by kubelet.py:

    {"hostname", "cwd", "argv", "env", "error_file",
     "mounts": [{"source", "target", "readOnly", "kind": "bind"|"tmpfs", "file": bool, "size"}],
     "scratch": a directory for overlay layers}

A mount point that does not exist is created in an overlay of its nearest existing parent,
so the host's filesystem is never changed (top-level ones, /data, are made by the agent:
hostfs.py). Exit 128 and a message in error_file if the
command cannot start (the kubelet reports StartError).
"""

import json
import os
import socket
import subprocess
import sys

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


def submounts_below(path):
    path = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(path)]


def ensure(target, is_file, scratch, overlays):
    if os.path.lexists(target):
        return
    parent = os.path.dirname(target)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if parent == "/dev" or parent.startswith("/dev/"):
        pass  # the pod's own tmpfs
    elif parent == "/" or submounts_below(parent):  # an overlay would hide those mounts
        raise OSError(f"cannot create the mount point {target} without changing the host ({parent})")
    elif parent not in overlays:
        n = len(overlays)
        upper, work = f"{scratch}/ov{n}/upper", f"{scratch}/ov{n}/work"
        os.makedirs(upper)
        os.makedirs(work)
        sh("mount", "-t", "overlay", "overlay", "-o", f"lowerdir={parent},upperdir={upper},workdir={work}", parent)
        overlays.add(parent)
    if is_file:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    else:
        os.makedirs(target, exist_ok=True)


def private_dev(scratch):
    """A container's /dev: tmpfs with the usual devices, /dev/shm 64Mi."""
    host = f"{scratch}/hostdev"
    os.makedirs(host, exist_ok=True)
    sh("mount", "--rbind", "/dev", host)
    sh("mount", "-t", "tmpfs", "-o", "mode=755,size=65536k", "tmpfs", "/dev")
    for d in DEVICES:
        open(f"/dev/{d}", "a").close()
        sh("mount", "--bind", f"{host}/{d}", f"/dev/{d}")
    for name, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                     ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
        os.symlink(to, f"/dev/{name}")
    os.makedirs("/dev/pts")
    sh("mount", "--bind", f"{host}/pts", "/dev/pts")
    os.makedirs("/dev/shm")
    sh("mount", "-t", "tmpfs", "-o", "mode=1777,size=65536k", "shm", "/dev/shm")
    sh("umount", "-l", host)


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    try:
        socket.sethostname(spec["hostname"])
        scratch = spec["scratch"]
        sh("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", scratch)
        private_dev(scratch)
        overlays = set()
        for m in sorted(spec["mounts"], key=lambda m: m["target"].count("/")):
            ensure(m["target"], m.get("file", False), scratch, overlays)
            if m["kind"] == "tmpfs":
                opts = "mode=1777" + (f",size={m['size']}" if m.get("size") else "")
                sh("mount", "-t", "tmpfs", "-o", opts, "tmpfs", m["target"])
            else:
                sh("mount", "--bind", m["source"], m["target"])
            if m.get("readOnly"):
                sh("mount", "-o", "remount,bind,ro", m["target"])
        os.chdir(spec.get("cwd") or "/")
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", b"") or b""
        return fail(spec, f"failed to set up the container: {e} {detail.decode(errors='replace')}".strip())
    try:
        os.execvpe(spec["argv"][0], spec["argv"], spec["env"])
    except OSError as e:
        return fail(spec, f'exec: "{spec["argv"][0]}": {e.strerror}')


def fail(spec, message):
    with open(spec["error_file"], "w") as f:
        f.write(message)
    return 128


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
