"""The kubelet's and the runtime's reading of a container and its image (pure)."""

import pytest

from cluster.images import normalize
from cluster.ocispec import (
    DEFAULT_CAPS,
    Image,
    Mount,
    User,
    capabilities,
    command_line,
    resolve_user,
    runtime_config,
    seccomp_profile,
)
from cluster.podspec import ConfigError

IMG = Image(name="ghcr.io/x/op:1", digest="sha256:ab", env=("PATH=/opt/venv/bin:/usr/bin", "HOME=/tmp"),
            entrypoint=("kopf", "run"), cmd=("--standalone",), user="1000:1000", workdir="/tmp")
PASSWD = "root:x:0:0:root:/root:/bin/bash\nact:x:1000:1000::/home/act:/bin/bash\n"
GROUP = "root:x:0:\nact:x:1000:\nstaff:x:50:\nvideo:x:44:act,other\n"


def pod(psc=None, csc=None):
    c = {"name": "main", **({"securityContext": csc} if csc else {})}
    return {"metadata": {"name": "p", "namespace": "n", "uid": "u1"},
            "spec": {"containers": [c], **({"securityContext": psc} if psc else {})}}, c


@pytest.mark.parametrize("container,argv", [
    ({}, ["kopf", "run", "--standalone"]),                                  # ENTRYPOINT + CMD
    ({"args": ["--x=$(A)"]}, ["kopf", "run", "--x=1"]),                      # args replace CMD
    ({"command": ["sh"]}, ["sh"]),                                          # command drops CMD too
    ({"command": ["echo", "$(A)"], "args": ["$$(A)"]}, ["echo", "1", "$(A)"]),
])
def test_command_replaces_entrypoint_and_args_replace_cmd(container, argv):
    assert command_line(container, IMG, {"A": "1"}) == argv


def test_no_command_at_all_is_a_config_error():
    with pytest.raises(ConfigError, match="no command specified"):
        command_line({}, Image(name="i", digest="d"), {})


def test_user_from_the_image_or_the_security_context():
    p, c = pod()
    assert resolve_user(p, c, IMG, PASSWD, GROUP) == User(uid=1000, gid=1000, groups=(1000, 44), home="/home/act")
    p, c = pod(psc={"runAsUser": 7, "fsGroup": 2000, "supplementalGroups": [50]}, csc={"runAsGroup": 8})
    assert resolve_user(p, c, IMG, PASSWD, GROUP) == User(uid=7, gid=8, groups=(8, 50, 2000), home="/")
    named = Image(name="i", digest="d", user="act:staff")
    p, c = pod()
    assert resolve_user(p, c, named, PASSWD, GROUP) == User(uid=1000, gid=50, groups=(50, 44), home="/home/act")


@pytest.mark.parametrize("image_user,csc,message", [
    ("", {}, "container has runAsNonRoot and image will run as root"),
    ("0:0", {}, "container has runAsNonRoot and image will run as root"),
    ("act", {}, "container has runAsNonRoot and image has non-numeric user (act), cannot verify user is non-root"),
    ("1000", {"runAsUser": 0}, "container's runAsUser breaks non-root policy"),
])
def test_run_as_non_root_refuses_what_the_kubelet_refuses(image_user, csc, message):
    p, c = pod(psc={"runAsNonRoot": True}, csc=csc)
    with pytest.raises(ConfigError) as e:
        resolve_user(p, c, Image(name="i", digest="d", user=image_user), PASSWD, GROUP)
    assert str(e.value) == f'{message} (pod: "p_n(u1)", container: main)'


def test_run_as_non_root_admits_a_numeric_non_root_user():
    p, c = pod(psc={"runAsNonRoot": True})
    assert resolve_user(p, c, Image(name="i", digest="d", user="1000"), PASSWD, GROUP).uid == 1000
    p, c = pod(psc={"runAsNonRoot": True}, csc={"runAsUser": 1000})
    assert resolve_user(p, c, Image(name="i", digest="d", user="root"), PASSWD, GROUP).uid == 1000


def test_capabilities_drop_all_and_none_effective_for_non_root():
    _, c = pod(csc={"capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}})
    assert capabilities(c, User(0, 0))["bounding"] == ["CAP_NET_BIND_SERVICE"]
    _, c = pod(csc={"capabilities": {"drop": ["NET_RAW"]}})
    caps = capabilities(c, User(1000, 1000))
    assert caps["bounding"] == [x for x in DEFAULT_CAPS if x != "CAP_NET_RAW"] and caps["effective"] == []


def test_runtime_config():
    _, c = pod(csc={"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False})
    cfg = runtime_config(argv=["a"], env={"X": "1"}, cwd="", user=User(1000, 1000, (2000,), "/home/act"),
                         hostname="h", netns="/var/run/netns/n", container=c,
                         mounts=[Mount(target="/etc/act", source="/v", read_only=True), Mount(target="/m", kind="tmpfs")])
    assert cfg["root"] == {"path": "rootfs", "readonly": True} and cfg["process"]["noNewPrivileges"] is True
    assert cfg["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    assert cfg["process"]["env"] == ["X=1", "HOME=/home/act"] and cfg["process"]["cwd"] == "/"
    assert "rlimits" not in cfg["process"]  # this sandbox cannot set them; the kubelet sets none
    assert {"type": "network", "path": "/var/run/netns/n"} in cfg["linux"]["namespaces"]
    by_dest = {m["destination"]: m for m in cfg["mounts"]}
    assert by_dest["/etc/act"]["options"][-1] == "ro" and by_dest["/m"]["type"] == "tmpfs"


def seccomp_of(psc=None, csc=None, user=User(1000, 1000)):
    p, c = pod(psc=psc, csc=csc)
    return runtime_config(argv=["a"], env={}, cwd="", user=user, hostname="h", netns="/n", mounts=[], container=c,
                          seccomp=seccomp_profile(p, c))["linux"].get("seccomp")


def denied(profile, errno=1):
    return {n for r in profile["syscalls"] if r.get("errnoRet") == errno and not r.get("args") for n in r["names"]}


def test_runtime_default_seccomp_refuses_what_the_runtime_refuses():
    """The container's seccompProfile, else the pod's; RuntimeDefault denies (EPERM) what the
    runtime's default profile refuses an unprivileged container and nothing the workloads use."""
    restricted = {"capabilities": {"drop": ["ALL"]}, "allowPrivilegeEscalation": False}
    prof = seccomp_of(psc={"seccompProfile": {"type": "RuntimeDefault"}}, csc=restricted)
    assert prof["defaultAction"] == "SCMP_ACT_ALLOW" and "SCMP_ARCH_X86_64" in prof["architectures"]
    assert {"mount", "umount2", "unshare", "setns", "pivot_root", "bpf", "perf_event_open", "kexec_load",
            "init_module", "reboot", "swapon", "keyctl", "add_key", "request_key", "userfaultfd",
            "open_by_handle_at", "acct", "settimeofday", "clock_settime", "chroot"} <= denied(prof)
    assert not denied(prof) & {"get_mempolicy", "mbind", "set_mempolicy", "clone", "futex", "shmget", "mmap",
                               "socket", "sched_setaffinity", "ptrace", "prctl", "memfd_create"}
    assert denied(prof, errno=38) == {"clone3"}  # glibc falls back to clone, whose flags a filter can read
    clone = [r["args"][0] for r in prof["syscalls"] if r["names"] == ["clone"]]
    assert {a["value"] for a in clone} >= {0x10000000, 0x40000000} and {a["op"] for a in clone} == {"SCMP_CMP_MASKED_EQ"}
    # the capabilities a container keeps allow their syscalls, as the runtime's profile does
    root = seccomp_of(csc={"seccompProfile": {"type": "RuntimeDefault"}, "capabilities": {"add": ["SYS_ADMIN"]}},
                      user=User(0, 0))
    assert {"chroot", "mount", "unshare"}.isdisjoint(denied(root)) and "reboot" in denied(root)
    assert not any(r["names"] in (["clone"], ["clone3"]) for r in root["syscalls"])


def test_seccomp_unconfined_is_none_and_localhost_is_refused():
    assert seccomp_of() is None  # unset: Unconfined, the kubelet's default
    assert seccomp_of(psc={"seccompProfile": {"type": "RuntimeDefault"}},
                      csc={"seccompProfile": {"type": "Unconfined"}}) is None  # the container's wins
    p, c = pod(csc={"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})
    with pytest.raises(ConfigError, match='seccomp profile Localhost "p.json" is not supported'):
        seccomp_profile(p, c)


@pytest.mark.parametrize("name,full", [("busybox", "docker.io/library/busybox:latest"),
                                       ("org/x:1", "docker.io/org/x:1"),
                                       ("ghcr.io/act-operator/operator:0.1.0", "ghcr.io/act-operator/operator:0.1.0"),
                                       ("localhost:5000/x", "localhost:5000/x:latest")])
def test_image_names_normalize_as_the_runtime_resolves_them(name, full):
    assert normalize(name) == full
