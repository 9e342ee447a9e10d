#!/usr/bin/env bash
# Prepare what the end-to-end tests run: Terraform providers built from the Go module proxy into a
# filesystem mirror, a CLI config that installs only from that mirror, and the Terraform and OpenTofu
# CLIs (find_terraform.sh). Everything is cached in $CACHE, so a second run takes about a second.
#
# Usage: build_providers.sh        CACHE = $AGT_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/authress-gitlab-token
#
# Writes CACHE/e2e-status.json: the mirror, the CLI config, and for each provider and CLI either what
# was found or the exact command and error that failed; the tests skip with that reason. This script
# fails only on its own errors: a provider that cannot be built is recorded, not fatal.
#
# Environment (optional):
#   AGT_EXTERNAL_REF   module version of github.com/terraform-providers/terraform-provider-external
#                      (default v1.2.0: its go.mod lacks /v2, so the v2.x tags are not module versions,
#                      and the module proxy refuses the v2 commits)
#   AGT_HTTP_REF       module version of github.com/terraform-providers/terraform-provider-http (default v1.2.0)
#   AGT_AUTHRESS_REF   module version of github.com/authress/terraform-provider-authress (default latest)
#   AGT_AUTHRESS_VERSION  the provider release a commit ref is (needed unless the ref is a vX.Y.Z tag)
#   AGT_AUTHRESS_BIN   a terraform-provider-authress binary built elsewhere, placed in the mirror as
#                      AGT_AUTHRESS_VERSION instead of building one
#   AGT_BUILD_TOFU=1   build OpenTofu when it is neither on PATH nor cached (about 6 minutes once;
#                      `make e2e-tofu`). Without it the OpenTofu tests run only where a tofu exists.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${AGT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authress-gitlab-token}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd -P)"
mirror="$cache/terraform-mirror"
cli_config="$cache/terraformrc"
status_file="$cache/e2e-status.json"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) os_arch=linux_amd64 ;;
  Linux/aarch64) os_arch=linux_arm64 ;;
  Darwin/x86_64) os_arch=darwin_amd64 ;;
  Darwin/arm64) os_arch=darwin_arm64 ;;
  *) os_arch="unknown_$(uname -m)" ;;
esac

log() { printf 'build_providers: %s\n' "$*" >&2; }

# Results, one line each: KIND<TAB>NAME<TAB>VALUE<TAB>ERROR (tabs and newlines in ERROR squeezed).
results="$work/results.tsv"
: >"$results"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(printf '%s' "$4" | tr '\t\n' '  ' | sed 's/  */ /g')" >>"$results"; }

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  PATH="$PATH:/usr/local/go/bin"
fi
have_go=1
command -v go >/dev/null 2>&1 || have_go=0

# build_provider NAMESPACE TYPE MODULE REF VERSION: place the provider in the mirror, record the outcome.
build_provider() {
  local namespace="$1" type="$2" module="$3" ref="$4" version="$5"
  local name="$namespace/$type" info dir resolved out src start

  if [[ -z "$version" && "$ref" =~ ^v([0-9]+\.[0-9]+\.[0-9]+)$ ]]; then
    version="${BASH_REMATCH[1]}"
  fi
  out="$mirror/registry.terraform.io/$namespace/$type/$version/$os_arch/terraform-provider-${type}_v$version"
  if [[ -n "$version" && -x "$out" ]]; then
    log "$name $version: in the mirror already"
    record provider "$name" "$version" ""
    return
  fi
  if [[ $have_go == 0 ]]; then
    record provider "$name" "" "go is not installed (not on PATH, not in /usr/local/go/bin): cannot build $module"
    return
  fi
  log "$name: go mod download -json $module@$ref"
  if ! info="$(go mod download -json "$module@$ref" 2>"$work/err")"; then
    # go reports the failure as JSON on stdout (field Error) and sometimes more on stderr.
    local error
    error="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Error",""))' 2>/dev/null || true)"
    error="$error $(cat "$work/err")"
    log "$name: FAILED: $error"
    record provider "$name" "" "go mod download -json $module@$ref failed: $error"
    return
  fi
  dir="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  resolved="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])')"
  if [[ -z "$version" ]]; then
    if [[ "$resolved" =~ ^v([0-9]+\.[0-9]+\.[0-9]+)$ ]]; then
      version="${BASH_REMATCH[1]}"
    else
      record provider "$name" "" "$module@$ref is $resolved, not a release tag: set the release it is in AGT_$(tr '[:lower:]' '[:upper:]' <<<"$type")_VERSION"
      return
    fi
    out="$mirror/registry.terraform.io/$namespace/$type/$version/$os_arch/terraform-provider-${type}_v$version"
    if [[ -x "$out" ]]; then
      log "$name $version: in the mirror already"
      record provider "$name" "$version" ""
      return
    fi
  fi
  # Build in a writable copy: the module cache is read-only, and module zips keep
  # vendor/modules.txt without the vendored code, so build from modules instead.
  src="$work/$type-src"
  cp -R "$dir" "$src"
  chmod -R u+w "$src"
  rm -rf "$src/vendor"
  mkdir -p "$(dirname "$out")"
  log "$name $version: go build (from $module@$resolved)"
  start=$SECONDS
  if ! (cd "$src" && GOFLAGS="-mod=mod -trimpath" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
    GOCACHE="$cache/go-build" go build -ldflags="-s -w" -o "$out.tmp" .) >"$work/build.log" 2>&1; then
    rm -f "$out.tmp"
    log "$name: FAILED: go build"
    sed 's/^/    /' "$work/build.log" >&2
    record provider "$name" "" "go build of $module@$resolved failed: $(grep -v '^go: downloading' "$work/build.log" | tail -n 3)"
    return
  fi
  mv "$out.tmp" "$out"
  log "$name $version: built in $((SECONDS - start)) s"
  record provider "$name" "$version" ""
}

build_provider hashicorp external github.com/terraform-providers/terraform-provider-external \
  "${AGT_EXTERNAL_REF:-v1.2.0}" ""
# data "http" makes the Authress provider's first call (GET {aud}/v1/accounts/{id} with the token as
# Bearer) while the Authress provider itself cannot be built. v1.2.0: the newest the proxy serves here.
build_provider hashicorp http github.com/terraform-providers/terraform-provider-http \
  "${AGT_HTTP_REF:-v1.2.0}" ""

if [[ -n "${AGT_AUTHRESS_BIN:-}" ]]; then
  version="${AGT_AUTHRESS_VERSION:?AGT_AUTHRESS_BIN needs AGT_AUTHRESS_VERSION}"
  out="$mirror/registry.terraform.io/authress/authress/$version/$os_arch/terraform-provider-authress_v$version"
  mkdir -p "$(dirname "$out")"
  install -m 0755 "$AGT_AUTHRESS_BIN" "$out"
  record provider authress/authress "$version" ""
else
  build_provider authress authress github.com/authress/terraform-provider-authress \
    "${AGT_AUTHRESS_REF:-latest}" "${AGT_AUTHRESS_VERSION:-}"
fi

# OpenTofu resolves "hashicorp/external" to its own registry host: give it the same binaries, as
# hard links (its mirror scan does not follow a symlinked host folder).
mkdir -p "$mirror/registry.terraform.io"
rm -rf "$mirror/registry.opentofu.org"
cp -al "$mirror/registry.terraform.io" "$mirror/registry.opentofu.org"

cat >"$cli_config.tmp" <<CONFIG
# Written by tests/e2e/build_providers.sh: install providers from the local filesystem mirror only.
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/*/*", "registry.opentofu.org/*/*"]
  }
}
CONFIG
mv "$cli_config.tmp" "$cli_config"

for cli in terraform tofu; do
  flag=""
  [[ $cli == tofu ]] && flag=--tofu
  if [[ $cli == tofu && "${AGT_BUILD_TOFU:-0}" != 1 ]]; then
    flag="--tofu --no-build"
  fi
  # shellcheck disable=SC2086 # $flag is one or two words on purpose
  if path="$(AGT_CACHE="$cache" "$here/find_terraform.sh" $flag 2>"$work/cli.err")"; then
    record cli "$cli" "$path" ""
    log "$cli: $path"
  else
    cat "$work/cli.err" >&2
    record cli "$cli" "" "$(tail -n 3 "$work/cli.err")"
  fi
done

python3 - "$results" "$status_file" "$mirror" "$cli_config" <<'PY'
import json, os, sys
results, status_file, mirror, cli_config = sys.argv[1:]
status = {"mirror": mirror, "cli_config": cli_config, "providers": {}, "clis": {}}
for line in open(results, encoding="utf-8"):
    kind, name, value, error = line.rstrip("\n").split("\t")
    key = "providers" if kind == "provider" else "clis"
    status[key][name] = {"version" if kind == "provider" else "path": value, "error": error.strip()}
tmp = status_file + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    json.dump(status, f, indent=2)
os.replace(tmp, status_file)
for key in ("providers", "clis"):
    for name, entry in status[key].items():
        print(f"build_providers: {name}: {entry.get('version') or entry.get('path') or 'MISSING: ' + entry['error']}", file=sys.stderr)
PY
