#!/usr/bin/env bash
# Build the ACT images from images/*/Dockerfile: with `docker build` where a Docker daemon answers,
# else with buildah (daemonless, `--isolation chroot`). Where the registry bases (python:*-slim,
# nvidia/cuda, ghcr.io/astral-sh/uv) cannot be pulled, the same Dockerfiles build on Debian bases
# made here with mmdebstrap (`bases`), passed as build arguments.
#
#   scripts/images.sh bases                      Debian bookworm bases into buildah's storage
#   scripts/images.sh build [NAME...]            operator trainer-cpu trainer (default: all three)
#   scripts/images.sh ci                         operator + trainer-cpu, skipped while its stamp is
#                                                current; exported to the OCI layout $OCI_DIR
#   scripts/images.sh export NAME...             buildah image -> $OCI_DIR, ref = the full image name
#   scripts/images.sh check [NAME...]            run each image as uid 1000 (a smoke test)
#   scripts/images.sh digest                     the digest that keys `ci`'s stamp
#   scripts/images.sh names [NAME...]            the full image names (also the OCI ref names)
#   scripts/images.sh args NAME                  the build arguments NAME gets here
#
# Environment (all optional):
#   IMAGE_PREFIX (ghcr.io/act-operator), VERSION (act_operator.__version__)
#   ENGINE   auto | docker | buildah          auto: docker when `docker info` answers
#   BASES    auto | registry | local          auto: local when Docker Hub does not answer in 5 s
#   WHEELS   a find-links dir holding torch-<version>+cpu (/opt/wheels): trainer-cpu installs torch
#            from it (buildah only: mounted read-only at the same path) instead of PyTorch's index
#   OCI_DIR  (.act/images)    BASES_DIR (.act/bases)
#   LAYERS   true: buildah keeps and reuses each instruction's layer; NO_CACHE=true: a cold build
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
IMAGE_PREFIX=${IMAGE_PREFIX:-ghcr.io/act-operator}
VERSION=${VERSION:-$("$PYTHON" -c "import sys; sys.path.insert(0, 'operator'); import act_operator; print(act_operator.__version__)")}
ENGINE=${ENGINE:-auto}
BASES=${BASES:-auto}
WHEELS=${WHEELS:-/opt/wheels}
OCI_DIR=${OCI_DIR:-$ROOT/.act/images}
BASES_DIR=${BASES_DIR:-$ROOT/.act/bases}
LAYERS=${LAYERS:-true}
NO_CACHE=${NO_CACHE:-false}
CI_STAMP=${CI_STAMP:-$ROOT/.act/images-ci.stamp}
ALL=(operator trainer-cpu trainer)

# The local bases: one Debian bookworm root filesystem with Python 3.11 (Debian's python3) for every
# FROM, and uv (from PyPI) at /uv as the ghcr.io/astral-sh/uv image has it.
DEBIAN_BASE=localhost/act/debian-python:bookworm
DEBIAN_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates,passwd
# the CA certificates this host adds (a TLS-intercepting proxy's): the local bases trust them too
EXTRA_CA_DIR=${EXTRA_CA_DIR:-/usr/local/share/ca-certificates}

# apt as in Debian's own images: downloaded packages and caches are deleted after each run, no
# translations (an image's `apt-get install` then leaves no .deb behind)
APT_CLEAN='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";'

log() { printf '+ %s\n' "$*" >&2; }
die() { printf 'images.sh: %s\n' "$*" >&2; exit 1; }

# A global ARG's default in a Dockerfile (`ARG NAME=value`).
arg_default() {
  sed -n "s/^ARG $2=//p" "images/$1/Dockerfile" | head -n1
}
uv_version() { arg_default trainer UV_IMAGE | sed 's/.*://'; }
uv_base() { echo "localhost/act/uv:$(uv_version)"; }

engine() {
  case $ENGINE in
    docker | buildah) echo "$ENGINE" ;;
    auto)
      if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then echo docker
      elif command -v buildah >/dev/null; then echo buildah
      else die "neither a Docker daemon nor buildah: install buildah (apt-get install buildah) or start Docker"
      fi ;;
    *) die "ENGINE=$ENGINE: use auto, docker or buildah" ;;
  esac
}

bases_mode() {
  case $BASES in
    registry | local) echo "$BASES" ;;
    # any HTTP answer (401 included) means the registry is reachable; no answer in 5 s means not
    auto) if curl -sS --max-time 5 -o /dev/null https://registry-1.docker.io/v2/ 2>/dev/null; then echo registry; else echo local; fi ;;
    *) die "BASES=$BASES: use auto, registry or local" ;;
  esac
}

image_name() { echo "$IMAGE_PREFIX/$1:$VERSION"; }

have_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# --- bases ----------------------------------------------------------------------------------------

build_debian_base() {
  local tar=$BASES_DIR/debian-python.tar
  command -v mmdebstrap >/dev/null || die "mmdebstrap is missing: apt-get install mmdebstrap"
  mkdir -p "$BASES_DIR"
  if [ ! -s "$tar" ]; then
    log "mmdebstrap bookworm -> $tar"
    printf '%s\n' "$APT_CLEAN" >"$BASES_DIR/docker-clean"
    # minbase + Python; docs, man pages and locales left out as the slim images do
    mmdebstrap --quiet --variant=minbase --include="$DEBIAN_PACKAGES" \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --customize-hook="if ls $EXTRA_CA_DIR/*.crt >/dev/null 2>&1; then cp $EXTRA_CA_DIR/*.crt \"\$1/usr/local/share/ca-certificates/\" && chroot \"\$1\" update-ca-certificates >/dev/null; fi" \
      --customize-hook='printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" > "$1/etc/pip.conf"' \
      --customize-hook='mkdir -p "$1/etc/uv" && printf "native-tls = true\n" > "$1/etc/uv/uv.toml"' \
      --customize-hook="cp $BASES_DIR/docker-clean \"\$1/etc/apt/apt.conf.d/docker-clean\"" \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
      bookworm "${tar%.tar}.tmp.tar" \
      "deb http://deb.debian.org/debian bookworm main" \
      "deb http://deb.debian.org/debian bookworm-updates main" \
      "deb http://deb.debian.org/debian-security bookworm-security main"
    mv "${tar%.tar}.tmp.tar" "$tar"
  fi
  log "import $tar -> $DEBIAN_BASE"
  local ctr
  ctr=$(buildah from scratch)
  buildah add --quiet "$ctr" "$tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd '["python3"]' \
    --label org.opencontainers.image.description="Debian bookworm minbase + python3 (mmdebstrap, scripts/images.sh)" \
    "$ctr"
  buildah commit --quiet --rm "$ctr" "$DEBIAN_BASE" >/dev/null
}

build_uv_base() {
  local v ctr
  v=$(uv_version)
  log "uv $v from PyPI -> $(uv_base)"
  ctr=$(buildah from --pull=never "$DEBIAN_BASE")
  buildah run --isolation chroot "$ctr" -- sh -ec \
    "python3 -m venv /tmp/uv && /tmp/uv/bin/pip install -q --no-cache-dir uv==$v && cp /tmp/uv/bin/uv /uv && rm -rf /tmp/uv"
  buildah commit --quiet --rm "$ctr" "$(uv_base)" >/dev/null
}

cmd_bases() {
  command -v buildah >/dev/null || die "buildah is missing: apt-get install buildah"
  build_debian_base
  build_uv_base
}

ensure_local_bases() {
  if ! have_image "$DEBIAN_BASE" || ! have_image "$(uv_base)"; then cmd_bases; fi
}

# --- build ----------------------------------------------------------------------------------------

# The build arguments of one image for the chosen bases (printed one per line).
build_args() {
  local name=$1 mode=$2 eng=$3
  if [ "$mode" = local ]; then
    case $name in
      operator | trainer-cpu) echo "PYTHON_IMAGE=$DEBIAN_BASE" ;;
      trainer)
        echo "CUDA_DEVEL_IMAGE=$DEBIAN_BASE"
        echo "CUDA_RUNTIME_IMAGE=$DEBIAN_BASE"
        echo "UV_IMAGE=$(uv_base)"
        # the base's python3 (3.11) instead of a uv-managed CPython (downloaded from GitHub)
        echo "UV_PYTHON_PREFERENCE=only-system"
        echo "PYTHON_VERSION=3.11" ;;
    esac
  fi
  # ALFWorld's game files are a GitHub release download
  if [ "$name" = trainer ] && ! curl -sS --max-time 5 -o /dev/null https://github.com 2>/dev/null; then
    echo "ALFWORLD_DATA=false"
  fi
  if [ "$name" = trainer-cpu ] && [ "$eng" = buildah ] && torch_wheel >/dev/null; then
    echo "TORCH_INDEX_URL=https://pypi.org/simple"
    echo "TORCH_FIND_LINKS=$WHEELS"
  fi
}

# The CPU torch wheel the trainer-cpu Dockerfile pins, if $WHEELS holds it.
torch_wheel() {
  local v
  v=$(sed -n 's/^ARG TORCH_VERSION=//p' images/trainer-cpu/Dockerfile | head -n1)
  compgen -G "$WHEELS/torch-$v+cpu-cp311-*.whl" | head -n1 | grep .
}

build_one() {
  local name=$1 mode=$2 eng=$3 tag args=() a start
  tag=$(image_name "$name")
  [ -f "images/$name/Dockerfile" ] || die "no images/$name/Dockerfile: the images are ${ALL[*]}"
  while read -r a; do [ -n "$a" ] && args+=(--build-arg "$a"); done < <(build_args "$name" "$mode" "$eng")
  if [ "$NO_CACHE" = true ]; then args+=(--no-cache); fi
  start=$(date +%s)
  if [ "$eng" = docker ]; then
    log "docker build $tag ${args[*]}"
    docker build -f "images/$name/Dockerfile" -t "$tag" "${args[@]}" .
  else
    local vol=()
    if [ "$name" = trainer-cpu ] && torch_wheel >/dev/null; then vol=(--volume "$WHEELS:$WHEELS:ro"); fi
    log "buildah bud $tag ${args[*]} ${vol[*]}"
    # docker format: it keeps SHELL (images/trainer's pipefail); pushes convert it to OCI
    buildah bud --isolation chroot --format docker --layers="$LAYERS" \
      -f "images/$name/Dockerfile" -t "$tag" "${args[@]}" "${vol[@]}" .
  fi
  log "built $tag in $(( $(date +%s) - start )) s"
}

cmd_build() {
  local names=("$@") eng mode
  [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
  eng=$(engine)
  mode=$(bases_mode)
  log "engine=$eng bases=$mode images: ${names[*]} as $IMAGE_PREFIX/<name>:$VERSION"
  if [ "$mode" = local ]; then
    [ "$eng" = buildah ] || die "BASES=local needs buildah (the bases live in buildah's storage)"
    ensure_local_bases
  fi
  for n in "${names[@]}"; do build_one "$n" "$mode" "$eng"; done
}

# --- OCI export -----------------------------------------------------------------------------------

cmd_export() {
  mkdir -p "$OCI_DIR"
  local n ref
  for n in "$@"; do
    ref=$(image_name "$n")
    log "push $ref -> oci:$OCI_DIR:$ref"
    # the oci transport replaces an index entry with the same ref name
    buildah push --quiet "$ref" "oci:$OCI_DIR:$ref"
  done
  # a re-push moves the ref name to the new manifest and leaves the old one in the index without a
  # name: drop those, then the blobs nothing reaches any more
  jq '.manifests |= map(select(.annotations["org.opencontainers.image.ref.name"] != null))' \
    "$OCI_DIR/index.json" >"$OCI_DIR/index.json.tmp" && mv "$OCI_DIR/index.json.tmp" "$OCI_DIR/index.json"
  if command -v umoci >/dev/null; then umoci gc --layout "$OCI_DIR"; fi
}

# The digest `ci` is keyed by: the Dockerfiles, .dockerignore, this script, every file the
# Dockerfiles COPY (tracked or not, minus what git ignores), and the names and bases.
cmd_digest() {
  {
    echo "$IMAGE_PREFIX $VERSION $(bases_mode) $(torch_wheel || true)"
    git ls-files -z --cached --others --exclude-standard -- \
        images .dockerignore scripts/images.sh pyproject.toml README.md constraints.txt operator trainer \
      | grep -zv -e '__pycache__' -e '\.egg-info/' | sort -z | xargs -0 sha256sum
  } | sha256sum | cut -d' ' -f1
}

cmd_ci() {
  local names=(operator trainer-cpu) digest n current=true
  digest=$(cmd_digest)
  for n in "${names[@]}"; do
    jq -e --arg r "$(image_name "$n")" \
      'any(.manifests[]; .annotations["org.opencontainers.image.ref.name"] == $r)' \
      "$OCI_DIR/index.json" >/dev/null 2>&1 || current=false
  done
  if $current && [ "$(cat "$CI_STAMP" 2>/dev/null)" = "$digest" ]; then
    log "images-ci: $OCI_DIR is current ($digest)"
    return 0
  fi
  ENGINE=buildah cmd_build "${names[@]}"
  cmd_export "${names[@]}"
  mkdir -p "$(dirname "$CI_STAMP")"
  echo "$digest" >"$CI_STAMP"
}

# --- smoke test: each image as the chart runs it (uid 1000, the image's HOME) ---------------------

run_in() {
  local image=$1 ctr rc=0
  shift
  ctr=$(buildah from --pull=never "$image")
  buildah run --isolation chroot --user 1000:1000 "$ctr" -- "$@" || rc=$?
  buildah rm "$ctr" >/dev/null
  return $rc
}

cmd_check() {
  local names=("$@") n
  [ ${#names[@]} -gt 0 ] || names=(operator trainer-cpu)
  for n in "${names[@]}"; do
    log "check $(image_name "$n")"
    case $n in
      operator)
        run_in "$(image_name operator)" sh -ec \
          'test "$(id -u)" = 1000; kopf --version; python -c "import act_operator.handlers"' ;;
      trainer-cpu | trainer)
        # the CUDA image imports vLLM too; only trainer-cpu can load DeepSpeed's CPU op here
        local extra=vllm shm=""
        if [ "$n" = trainer-cpu ]; then extra=deepspeed; shm='
from deepspeed.comm.torch import build_shm_op
t = time.time()
assert build_shm_op() is not None, "DeepSpeed shm_comm op did not load"
assert time.time() - t < 10, "DeepSpeed shm_comm op was compiled at run time"
print("deepspeed shm_comm loaded in %.2f s" % (time.time() - t))'; fi
        run_in "$(image_name "$n")" sh -ec "
          test \"\$(id -u)\" = 1000 && test \"\$HOME\" = /home/act && test \"\$PWD\" = /home/act
          touch \"\$HOME/.w\" && rm \"\$HOME/.w\"
          act-trainer --help >/dev/null
          java -version 2>&1 | head -n1
          python -c '
import time
import act_trainer.cli, deepspeed, scienceworld, alfworld, textworld_express, $extra  # noqa
$shm
print(\"imports ok\")'" ;;
      *) die "check: no image $n" ;;
    esac
  done
}

case ${1:-build} in
  bases) cmd_bases ;;
  build) shift || true; cmd_build "$@" ;;
  ci) cmd_ci ;;
  export) shift; cmd_export "$@" ;;
  check) shift; cmd_check "$@" ;;
  digest) cmd_digest ;;
  names) shift; names=("$@"); [ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
    for n in "${names[@]}"; do image_name "$n"; done ;;
  args) [ $# -eq 2 ] || die "args NAME"; build_args "$2" "$(bases_mode)" "$(engine)" ;;
  *) die "unknown command $1: bases | build [NAME...] | ci | export NAME... | check [NAME...] | digest | names | args NAME" ;;
esac
