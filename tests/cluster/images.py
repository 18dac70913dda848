"""The node's images: an OCI image layout directory (what `make images` exports, by full image
name) as the content store, each image unpacked once by umoci into a read-only root filesystem
keyed by its manifest digest, and a writable overlayfs layer per container on top of it, as
containerd's content store and overlay snapshotter do. Nothing is ever pulled: an image that is
not in the store is an image pull error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

from .ocispec import Image


class ImageNotFound(Exception):
    """The image is not in the node's store: ErrImagePull, then ImagePullBackOff."""


def normalize(name: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest`, as the runtime resolves short names."""
    if "@" in name:
        return name
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + ("library/" + name if not rest else name)
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


class ImageStore:
    def __init__(self, layout: Path, cache: Path):
        self.layout, self.cache = Path(layout), Path(cache)
        self.lock = threading.Lock()
        self.unpacking: dict[str, threading.Lock] = {}

    def _blob(self, digest: str) -> dict:
        algo, _, hex_ = digest.partition(":")
        return json.loads((self.layout / "blobs" / algo / hex_).read_text())

    def resolve(self, name: str) -> Image:
        want = normalize(name)
        try:
            index = json.loads((self.layout / "index.json").read_text())
        except FileNotFoundError:
            index = {"manifests": []}
        for m in reversed(index.get("manifests") or []):  # the last push of a name wins
            ref = (m.get("annotations") or {}).get("org.opencontainers.image.ref.name", "")
            if ref and normalize(ref) == want:
                manifest = self._blob(m["digest"])
                return Image.from_config(ref, m["digest"], self._blob(manifest["config"]["digest"]))
        raise ImageNotFound(f'failed to pull and unpack image "{want}": not found in the node\'s image store '
                            f"{self.layout} (nothing is pulled here: build it with `make images`)")

    def rootfs(self, image: Image) -> Path:
        """The image's root filesystem, unpacked once (umoci applies the layers and whiteouts)."""
        dest = self.cache / image.digest.replace(":", "-")
        with self.lock:
            lock = self.unpacking.setdefault(image.digest, threading.Lock())
        with lock:
            if not (dest / "rootfs").is_dir():
                tmp = dest.with_name(dest.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                subprocess.run(["umoci", "raw", "unpack", "--image", f"{self.layout}:{image.name}", str(tmp / "rootfs")],
                               check=True, capture_output=True, text=True)
                os.replace(tmp, dest)
        return dest / "rootfs"

    @staticmethod
    def read_etc(rootfs: Path, name: str) -> str:
        try:
            return (rootfs / "etc" / name).read_text(errors="replace")
        except OSError:
            return ""


def mount_overlay(lower: Path, layer: Path) -> Path:
    """A container's root: the image read-only below, its own writable layer above."""
    upper, work, merged = layer / "upper", layer / "work", layer / "rootfs"
    for d in (upper, work, merged):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={upper},workdir={work}",
                    str(merged)], check=True, capture_output=True, text=True)
    return merged


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
