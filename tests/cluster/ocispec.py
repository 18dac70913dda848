"""What the kubelet and the container runtime make of a container and its image, pure (no I/O):
the command line, the environment's image part, the user (with the runAsNonRoot checks), and
the OCI runtime config (config.json) that runc runs.

Semantics and messages are the kubelet's (pkg/kubelet/kuberuntime) and containerd's CRI
plugin's (pkg/cri/opts/spec_opts.go, the default capability set); the RuntimeDefault seccomp
profile follows the runtime's default profile (moby's profiles/seccomp/default.json, which
containerd's contrib/seccomp mirrors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .podspec import ConfigError, expand

# containerd's default capabilities for a container (pkg/oci/spec.go populateDefaultUnixSpec)
DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
                "CAP_KILL", "CAP_AUDIT_WRITE")
MASKED = ("/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
SHM_SIZE = 64 * 1024 * 1024  # the kubelet's default /dev/shm

# RuntimeDefault as a denylist: everything is allowed but what the runtime's default profile
# refuses to a container, each group unless the container's bounding set holds the capability
# that lets the runtime allow it ("" = never; io_uring_* as recent runtime profiles refuse it).
# The runtime writes the same policy as an allowlist of ~350 names; its denials are the part that
# protects the node, and a denylist of them cannot refuse a syscall a workload needs (PyTorch,
# gloo, DeepSpeed's shm_comm, JVMs, vLLM's NUMA binding: get_mempolicy/mbind/set_mempolicy stay
# allowed). The price: syscalls newer than this list are allowed. ptrace and process_vm_* stay
# allowed, as the runtime allows them on kernels >= 4.8; odd `personality` arguments are not
# filtered.
SECCOMP_DENIED: dict[str, tuple[str, ...]] = {
    "": ("pivot_root", "kexec_load", "kexec_file_load", "swapon", "swapoff", "keyctl", "add_key", "request_key",
         "userfaultfd", "uselib", "ustat", "sysfs", "_sysctl", "nfsservctl", "create_module", "get_kernel_syms",
         "query_module", "vm86", "vm86old", "io_uring_setup", "io_uring_enter", "io_uring_register"),
    "CAP_SYS_ADMIN": ("mount", "umount", "umount2", "unshare", "setns", "mount_setattr", "move_mount", "open_tree",
                      "fsopen", "fsconfig", "fsmount", "fspick", "fanotify_init", "lookup_dcookie", "quotactl",
                      "quotactl_fd", "sethostname", "setdomainname", "bpf", "perf_event_open", "syslog"),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_SYSLOG": ("syslog",),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
}
# clone's namespace flags (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET): refused
# without CAP_SYS_ADMIN, as unshare is
CLONE_NEW_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
EPERM, ENOSYS, AF_VSOCK = 1, 38, 40
SECCOMP_ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                  "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}


@dataclass(frozen=True)
class Image:
    """The parts of an OCI image config (`config` of application/vnd.oci.image.config.v1+json)
    the kubelet and the runtime use."""
    name: str
    digest: str  # of the manifest: imageID name@digest
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    user: str = ""
    workdir: str = ""

    @classmethod
    def from_config(cls, name: str, digest: str, config: dict) -> Image:
        c = config.get("config") or {}
        return cls(name=name, digest=digest, env=tuple(c.get("Env") or ()),
                   entrypoint=tuple(c.get("Entrypoint") or ()), cmd=tuple(c.get("Cmd") or ()),
                   user=c.get("User") or "", workdir=c.get("WorkingDir") or "")

    def env_map(self) -> dict[str, str]:
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in self.env)


@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    groups: tuple[int, ...] = field(default=())
    home: str = "/"


def command_line(container: dict, image: Image, env: dict[str, str]) -> list[str]:
    """`command` replaces the image's ENTRYPOINT, `args` its CMD; $(VAR) is expanded in command
    and args only (kubelet: kuberuntime_container.go, containerd: WithProcessArgs)."""
    command, args = container.get("command") or [], container.get("args") or []
    if command:
        argv = [expand(a, env) for a in command + args]
    else:
        argv = list(image.entrypoint) + ([expand(a, env) for a in args] if args else list(image.cmd))
    if not argv:
        raise ConfigError(f"no command specified: image {image.name} has no ENTRYPOINT or CMD "
                          "and the container no command")
    return argv


def _passwd(text: str) -> list[list[str]]:
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _effective(pod: dict, container: dict, key: str):
    """A securityContext field: the container's, else the pod's."""
    csc, psc = container.get("securityContext") or {}, (pod.get("spec") or {}).get("securityContext") or {}
    return csc[key] if key in csc else psc.get(key)


def resolve_user(pod: dict, container: dict, image: Image, passwd: str, group: str) -> User:
    """uid/gid/groups/HOME as containerd sets them; the runAsNonRoot checks as the kubelet does
    (verifyRunAsNonRoot), raising ConfigError (CreateContainerConfigError) with its messages."""
    m = pod["metadata"]
    who = f'(pod: "{m["name"]}_{m.get("namespace", "default")}({m.get("uid", "")})", container: {container["name"]})'
    run_as_user, run_as_group = _effective(pod, container, "runAsUser"), _effective(pod, container, "runAsGroup")
    img_user, _, img_group = image.user.partition(":")
    users, groups = _passwd(passwd), _passwd(group)
    if _effective(pod, container, "runAsNonRoot"):
        if run_as_user is not None:
            if run_as_user == 0:
                raise ConfigError(f"container's runAsUser breaks non-root policy {who}")
        elif img_user in ("", "0", "root"):
            raise ConfigError(f"container has runAsNonRoot and image will run as root {who}")
        elif not img_user.isdigit():
            raise ConfigError(f"container has runAsNonRoot and image has non-numeric user ({img_user}), "
                              f"cannot verify user is non-root {who}")
    entry = None
    if run_as_user is not None:
        uid = int(run_as_user)
        entry = next((u for u in users if len(u) > 3 and u[2] == str(uid)), None)
    elif img_user.isdigit() or not img_user:
        uid = int(img_user or 0)
        entry = next((u for u in users if len(u) > 3 and u[2] == str(uid)), None)
    else:
        entry = next((u for u in users if u[0] == img_user and len(u) > 3), None)
        if entry is None:
            raise ConfigError(f'failed to resolve the image user "{img_user}": no such user in /etc/passwd')
        uid = int(entry[2])
    if run_as_group is not None:
        gid = int(run_as_group)
    elif img_group:
        if img_group.isdigit():
            gid = int(img_group)
        else:
            g = next((g for g in groups if g[0] == img_group and len(g) > 2), None)
            if g is None:
                raise ConfigError(f'failed to resolve the image group "{img_group}": no such group in /etc/group')
            gid = int(g[2])
    else:
        gid = int(entry[3]) if entry else 0
    # the primary group, the image's /etc/group memberships, supplementalGroups, fsGroup (containerd)
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    member = [int(g[2]) for g in groups if entry and len(g) > 3 and entry[0] in g[3].split(",")]
    extra = [gid, *member, *(int(g) for g in psc.get("supplementalGroups") or [])]
    if psc.get("fsGroup") is not None:
        extra.append(int(psc["fsGroup"]))
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    return User(uid=uid, gid=gid, groups=tuple(dict.fromkeys(extra)), home=home)


def capabilities(container: dict, user: User) -> dict[str, list[str]]:
    """The default set, minus `drop` (ALL drops every one), plus `add`. A non-root process keeps
    none in its effective and permitted sets (containerd: non-root users get no effective caps)."""
    caps = (container.get("securityContext") or {}).get("capabilities") or {}
    norm = [("CAP_" + c.upper()).replace("CAP_CAP_", "CAP_") for c in caps.get("drop") or []]
    have = [] if "CAP_ALL" in norm else [c for c in DEFAULT_CAPS if c not in norm]
    have += [c for c in (("CAP_" + a.upper()).replace("CAP_CAP_", "CAP_") for a in caps.get("add") or [])
             if c not in have]
    eff = have if user.uid == 0 else []
    return {"bounding": have, "effective": eff, "permitted": eff, "inheritable": [], "ambient": []}


def seccomp_profile(pod: dict, container: dict) -> str | None:
    """The effective seccompProfile type: the container's, else the pod's. Unset is Unconfined
    (the kubelet's default without `seccompDefault`): None, no filter. The node has no profile
    files, so Localhost is refused (ConfigError: CreateContainerConfigError)."""
    kind = (_effective(pod, container, "seccompProfile") or {}).get("type")
    if kind in (None, "Unconfined"):
        return None
    if kind == "RuntimeDefault":
        return kind
    if kind == "Localhost":
        local = _effective(pod, container, "seccompProfile").get("localhostProfile")
        raise ConfigError(f'seccomp profile Localhost "{local}" is not supported: this node has no seccomp '
                          "profiles (use RuntimeDefault or Unconfined)")
    raise ConfigError(f"unknown seccompProfile type {kind!r}")


def runtime_default_seccomp(bounding: list[str], machine: str = "x86_64") -> dict:
    """linux.seccomp for RuntimeDefault (see SECCOMP_DENIED): EPERM for what the container's
    capabilities do not allow; without CAP_SYS_ADMIN also clone with namespace flags, and clone3
    gets ENOSYS (its flags are behind a pointer seccomp cannot read), so that glibc falls back to
    clone, as under the runtime's profile. AF_VSOCK sockets are refused as the runtime does."""
    granted = {name for cap, names in SECCOMP_DENIED.items() if cap and cap in bounding for name in names}
    denied = [name for names in SECCOMP_DENIED.values() for name in names if name not in granted]
    rules = [{"names": list(dict.fromkeys(denied)), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
             {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
              "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_EQ"}]}]
    if "CAP_SYS_ADMIN" not in bounding:
        rules += [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                   "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]}
                  for flag in CLONE_NEW_FLAGS]
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {"defaultAction": "SCMP_ACT_ALLOW", "architectures": SECCOMP_ARCHES.get(machine, []), "syscalls": rules}


@dataclass(frozen=True)
class Mount:
    target: str
    source: str = ""
    kind: str = "bind"  # bind | tmpfs
    read_only: bool = False
    size: str | None = None


def runtime_config(*, argv: list[str], env: dict[str, str], cwd: str, user: User, hostname: str, netns: str,
                   mounts: list[Mount], container: dict, seccomp: str | None = None, rootfs: str = "rootfs",
                   machine: str = "x86_64") -> dict:
    """The OCI runtime config for runc: the pod's network namespace, new mount/UTS/IPC/PID
    namespaces (one PID namespace per container, the kubelet's default), no rlimits (this
    sandbox lacks CAP_SYS_RESOURCE, and the kubelet sets none), the seccomp filter of
    `seccomp` (seccomp_profile's answer)."""
    sc = container.get("securityContext") or {}
    caps = capabilities(container, user)
    base = [{"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={SHM_SIZE}"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}]
    for m in mounts:
        if m.kind == "tmpfs":
            opts = ["nosuid", "nodev", "mode=1777"] + ([f"size={m.size}"] if m.size else [])
            base.append({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": opts})
        else:
            base.append({"destination": m.target, "type": "bind", "source": m.source,
                         "options": ["rbind", "rprivate"] + (["ro"] if m.read_only else ["rw"])})
    env = dict(env)
    env.setdefault("HOME", user.home)
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": user.uid, "gid": user.gid, "additionalGids": list(user.groups)},
                    "args": argv, "env": [f"{k}={v}" for k, v in env.items()], "cwd": cwd or "/",
                    "capabilities": caps,
                    # allowPrivilegeEscalation defaults to true in Kubernetes
                    "noNewPrivileges": sc.get("allowPrivilegeEscalation") is False},
        "root": {"path": rootfs, "readonly": bool(sc.get("readOnlyRootFilesystem"))},
        "hostname": hostname,
        "mounts": base,
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                                 {"type": "network", "path": netns}],
                  "maskedPaths": list(MASKED), "readonlyPaths": list(READONLY),
                  "resources": {"devices": [{"allow": False, "access": "rwm"}]},
                  **({"seccomp": runtime_default_seccomp(caps["bounding"], machine)} if seccomp == "RuntimeDefault" else {})},
    }
