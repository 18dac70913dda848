"""The Pod Security Standards "restricted" profile (latest version) as one pure function over a pod spec.

It follows the rule list of k8s.io/pod-security-admission (policy/check_*.go): the baseline
checks, which "restricted" includes, then restricted's own. Each problem names the field, as the
admission plugin's messages do, so a failing test says what to fix. Windows-only fields
(hostProcess) and AppArmor/SELinux options are checked as the plugin checks them.
"""

from __future__ import annotations

# baseline: capabilities a container may add (check_capabilities_baseline.go)
BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
                 "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
RESTRICTED_CAPS = {"NET_BIND_SERVICE"}  # restricted: the only one that may be added back after dropping ALL
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}
# restricted: the volume types a pod may use (check_restrictedVolumes.go)
ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                   "secret"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}
APPARMOR_OK = {"RuntimeDefault", "Localhost"}


def _containers(spec: dict) -> list[tuple[str, dict]]:
    return [(f"{kind}[{c.get('name', i)}]", c) for kind in ("initContainers", "containers", "ephemeralContainers")
            for i, c in enumerate(spec.get(kind) or [])]


def restricted_problems(spec: dict, annotations: dict | None = None) -> list[str]:
    """What keeps a PodSpec (a dict as in YAML, camelCase) from passing "restricted"; [] when it passes."""
    out: list[str] = []
    psc = spec.get("securityContext") or {}
    containers = _containers(spec)

    # --- baseline ---
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            out.append(f"{field}=true")
    if (psc.get("windowsOptions") or {}).get("hostProcess"):
        out.append("securityContext.windowsOptions.hostProcess=true")
    for v in spec.get("volumes") or []:
        if "hostPath" in v:
            out.append(f"volumes[{v.get('name')}]: hostPath")
    for where, c in containers:
        csc = c.get("securityContext") or {}
        if csc.get("privileged"):
            out.append(f"{where}.securityContext.privileged=true")
        if (csc.get("windowsOptions") or {}).get("hostProcess"):
            out.append(f"{where}.securityContext.windowsOptions.hostProcess=true")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(f"{where}.ports[{p.get('name', p.get('containerPort'))}].hostPort={p['hostPort']}")
        added = set((csc.get("capabilities") or {}).get("add") or [])  # exact names, as upstream compares them
        if added - BASELINE_CAPS:
            out.append(f"{where}.securityContext.capabilities.add: {sorted(added - BASELINE_CAPS)}")
        if csc.get("procMount", "Default") != "Default":
            out.append(f"{where}.securityContext.procMount={csc['procMount']}")
    for key, value in (annotations or {}).items():  # AppArmor, the annotation form (before 1.30)
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and value != "runtime/default" \
                and not value.startswith("localhost/"):
            out.append(f"annotation {key}={value}")
    for where, sc in [("securityContext", psc)] + [(f"{w}.securityContext", c.get("securityContext") or {})
                                                   for w, c in containers]:
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in APPARMOR_OK:
            out.append(f"{where}.appArmorProfile.type={apparmor}")
        se = sc.get("seLinuxOptions") or {}
        if se.get("type", "") not in SELINUX_TYPES or se.get("user") or se.get("role"):
            out.append(f"{where}.seLinuxOptions={se}")
    for s in psc.get("sysctls") or []:
        if s.get("name") not in SAFE_SYSCTLS:
            out.append(f"securityContext.sysctls: {s.get('name')}")

    # --- restricted ---
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volumes[{v.get('name')}]: {sorted(kinds - ALLOWED_VOLUMES)} (restricted volume type)")
    pod_non_root, pod_seccomp = psc.get("runAsNonRoot"), (psc.get("seccompProfile") or {}).get("type")
    if pod_non_root is False:
        out.append("securityContext.runAsNonRoot=false")
    if pod_seccomp is not None and pod_seccomp not in SECCOMP_OK:
        out.append(f"securityContext.seccompProfile.type={pod_seccomp}")
    if psc.get("runAsUser") == 0:
        out.append("securityContext.runAsUser=0")
    for where, c in containers:
        csc = c.get("securityContext") or {}
        if csc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}.securityContext.allowPrivilegeEscalation != false")
        non_root = csc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            out.append(f"{where}.securityContext.runAsNonRoot != true (nor the pod's)")
        if csc.get("runAsUser") == 0:
            out.append(f"{where}.securityContext.runAsUser=0")
        seccomp = (csc.get("seccompProfile") or {}).get("type")
        if seccomp is not None and seccomp not in SECCOMP_OK:
            out.append(f"{where}.securityContext.seccompProfile.type={seccomp}")
        elif seccomp is None and pod_seccomp is None:
            out.append(f"{where}.securityContext.seccompProfile unset (nor the pod's)")
        caps = csc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{where}.securityContext.capabilities.drop does not include ALL")
        added = set(caps.get("add") or [])
        if added - RESTRICTED_CAPS:
            out.append(f"{where}.securityContext.capabilities.add: {sorted(added - RESTRICTED_CAPS)} "
                       "(only NET_BIND_SERVICE)")
    return out
