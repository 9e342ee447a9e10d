#!/usr/bin/env bash
# Prepare what the end-to-end tests run: Terraform providers in a filesystem mirror, a CLI config that
# installs only from that mirror, and the Terraform and OpenTofu CLIs (find_terraform.sh). Everything
# is cached in $CACHE, so a second run takes about a second. One build at a time per cache (flock):
# parallel `make test` runs in several clones wait for the first instead of building the same thing.
#
# Usage: build_providers.sh [--demo]
#   CACHE = $AGT_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/authress-gitlab-token-e2e (not the helper's own
#   key cache, ~/.cache/authress-gitlab-token).
#   --demo: only what `make demo` runs: the CLI on the machine (Terraform, else OpenTofu; Terraform is
#   built only when neither is there), authress/authress 2.0.39 and the one hashicorp provider the
#   route of scripts/demo.tf needs (hashicorp/local 2.9.0 for "./terraform/ephemeral", hashicorp/external
#   2.4.0 for "./terraform"). Its results join those of an earlier full build in the status file.
#
# The providers:
#   hashicorp/external 2.4.0, hashicorp/local 2.9.0 (the ephemeral route), authress/authress 2.0.39
#       built at once from the upstream sources in $VENDOR (each tarball's sha256 checked first). Without $VENDOR: fetched from registry.terraform.io with
#       `terraform providers mirror`, as `terraform init` does on a machine with internet access.
#   hashicorp/external 1.2.0 (the module's lower bound), hashicorp/http 1.2.0   built from the Go module proxy.
#   authress/authress, newest   tried from the Go module proxy; recorded as "newest" (it is refused there).
#
# Writes CACHE/e2e-status.json: the mirror, the CLI config, and for each provider and CLI either what
# was found or the exact command and error that failed; the tests skip with that reason (in CI they fail,
# unless the thing cannot be had here). This script fails only on its own errors.
#
# Environment (optional):
#   AGT_VENDOR_DIR   the provider sources (default: shared/vendor/terraform-providers beside the clone)
#   AGT_NO_REGISTRY=1  never fetch from registry.terraform.io, even without $VENDOR
#   AGT_TF_VERSION, AGT_TOFU_VERSION   see find_terraform.sh
set -euo pipefail

mode=full
for arg in "$@"; do
  case "$arg" in
    --demo) mode=demo ;;
    *) echo "build_providers.sh: unknown argument $arg (use --demo)" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cache="${AGT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authress-gitlab-token-e2e}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd -P)"
exec 9>"$cache/build.lock"
if ! flock -n 9; then
  echo "build_providers: another build holds $cache/build.lock; waiting for it" >&2
  flock 9
fi
mirror="$cache/terraform-mirror"
cli_config="$cache/terraformrc"
status_file="$cache/e2e-status.json"
work="$(mktemp -d)"
trap 'chmod -R u+w "$work" 2>/dev/null || true; rm -rf "$work"' EXIT

# The sources: shared/ beside the clone (CI), or beside the main clone of a git worktree.
vendor="${AGT_VENDOR_DIR:-}"
if [[ -z "$vendor" ]]; then
  for root in "$repo" "$(cd "$repo" && git rev-parse --path-format=absolute --git-common-dir 2>/dev/null | xargs -r dirname)"; do
    if [[ -n "$root" && -d "$root/../shared/vendor/terraform-providers" ]]; then
      vendor="$(cd "$root/../shared/vendor/terraform-providers" && pwd)"
      break
    fi
  done
fi

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

# find_cli NAME: record the CLI's path or why there is none (find_terraform.sh builds it when it can).
find_cli() {
  local flag="" path
  [[ $1 == tofu ]] && flag=--tofu
  if path="$(AGT_CACHE="$cache" "$here/find_terraform.sh" $flag 2>"$work/cli.err")"; then
    cat "$work/cli.err" >&2
    record cli "$1" "$path" ""
    log "$1: $path"
  else
    cat "$work/cli.err" >&2
    record cli "$1" "" "$(tail -n 3 "$work/cli.err")"
  fi
}

# Terraform first (the registry fallback needs it), OpenTofu last (the longest build). The demo takes
# the CLI on the machine: Terraform, else OpenTofu, else it builds Terraform.
if [[ $mode == demo ]] && ! AGT_CACHE="$cache" "$here/find_terraform.sh" --no-build >/dev/null 2>&1 &&
  AGT_CACHE="$cache" "$here/find_terraform.sh" --tofu --no-build >/dev/null 2>&1; then
  find_cli tofu
else
  find_cli terraform
fi
terraform_cli="$(awk -F'\t' '$1 == "cli" && $2 == "terraform" {print $3}' "$results")"

binary() { echo "$mirror/registry.terraform.io/$1/$3/$os_arch/terraform-provider-${2}_v$3"; }

# go_build NAME SRC OUT: build the provider in SRC (a writable copy) into OUT.
go_build() {
  local name="$1" src="$2" out="$3" start=$SECONDS build_log="$2.log"
  mkdir -p "$(dirname "$out")"
  if ! (cd "$src" && GOFLAGS="-mod=mod -trimpath -buildvcs=false" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
    GOCACHE="$cache/go-build" go build -ldflags="-s -w" -o "$out.tmp" .) >"$build_log" 2>&1; then
    rm -f "$out.tmp"
    log "$name: FAILED: go build"
    sed 's/^/    /' "$build_log" >&2
    echo "go build failed: $(grep -v '^go: downloading' "$build_log" | tail -n 3)"
    return 1
  fi
  mv "$out.tmp" "$out"
  log "$name: built in $((SECONDS - start)) s"
}

# from_vendor NAMESPACE TYPE VERSION TARBALL SHA256: build from the upstream source tarball in $VENDOR,
# else fetch from the registry; record the outcome under NAMESPACE/TYPE@VERSION.
from_vendor() {
  local namespace="$1" type="$2" version="$3" tarball="$4" sha="$5"
  local name="$namespace/$type@$version" out actual error
  out="$(binary "$namespace/$type" "$type" "$version")"
  # Built here earlier, or fetched by `terraform providers mirror` (its packed layout, a zip).
  if [[ -x "$out" || -f "$mirror/registry.terraform.io/$namespace/$type/terraform-provider-${type}_${version}_$os_arch.zip" ]]; then
    log "$name: in the mirror already"
    record provider "$name" "$version" ""
    return
  fi
  if [[ -z "$vendor" || ! -f "$vendor/$tarball" ]]; then
    from_registry "$namespace" "$type" "$version" "no $tarball in ${vendor:-../shared/vendor/terraform-providers (set AGT_VENDOR_DIR)}"
    return
  fi
  actual="$(sha256sum "$vendor/$tarball" | cut -d' ' -f1)"
  if [[ "$actual" != "$sha" ]]; then
    record provider "$name" "" "$vendor/$tarball has sha256 $actual, expected $sha: not building it"
    log "$name: FAILED: sha256 mismatch"
    return
  fi
  if [[ $have_go == 0 ]]; then
    record provider "$name" "" "go is not installed (not on PATH, not in /usr/local/go/bin): cannot build $tarball"
    return
  fi
  tar xzf "$vendor/$tarball" -C "$work"
  log "$name: go build (from $tarball, sha256 checked)"
  if error="$(go_build "$name" "$work/terraform-provider-$type-v$version" "$out")"; then
    record provider "$name" "$version" ""
  else
    record provider "$name" "" "$error"
  fi
}

# from_registry NAMESPACE TYPE VERSION WHY: what `terraform init` does with internet access.
from_registry() {
  local namespace="$1" type="$2" version="$3" why="$4" name="$1/$2@$3" config="$work/registry-$2-$3"
  if [[ "${AGT_NO_REGISTRY:-0}" == 1 || -z "$terraform_cli" ]]; then
    record provider "$name" "" "$why; and ${terraform_cli:+AGT_NO_REGISTRY=1 forbids }${terraform_cli:-no terraform CLI for }fetching it from registry.terraform.io"
    return
  fi
  mkdir -p "$config"
  printf 'terraform {\n  required_providers {\n    %s = {\n      source  = "%s/%s"\n      version = "%s"\n    }\n  }\n}\n' \
    "$type" "$namespace" "$type" "$version" >"$config/main.tf"
  log "$name: $why; terraform providers mirror (registry.terraform.io)"
  if (cd "$config" && TF_CLI_CONFIG_FILE=/dev/null "$terraform_cli" providers mirror -platform="$os_arch" "$mirror") \
    >"$work/mirror.log" 2>&1; then
    record provider "$name" "$version" ""
  else
    record provider "$name" "" "$why; terraform providers mirror failed: $(tail -n 3 "$work/mirror.log")"
  fi
}

# from_proxy NAMESPACE TYPE MODULE REF LABEL: build a Go module version from the proxy; record it as LABEL.
from_proxy() {
  local namespace="$1" type="$2" module="$3" ref="$4" label="$5"
  local name="$namespace/$type@$label" info dir resolved version out error
  if [[ "$ref" =~ ^v([0-9]+\.[0-9]+\.[0-9]+)$ && -x "$(binary "$namespace/$type" "$type" "${BASH_REMATCH[1]}")" ]]; then
    log "$name: in the mirror already"
    record provider "$name" "${BASH_REMATCH[1]}" ""
    return
  fi
  if [[ $have_go == 0 ]]; then
    record provider "$name" "" "go is not installed (not on PATH, not in /usr/local/go/bin): cannot build $module"
    return
  fi
  log "$name: go mod download -json $module@$ref"
  if ! info="$(go mod download -json "$module@$ref" 2>"$work/err")"; then
    # go reports the failure as JSON on stdout (field Error) and sometimes more on stderr.
    error="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("Error",""))' 2>/dev/null || true)"
    error="$error $(cat "$work/err")"
    log "$name: FAILED: $error"
    record provider "$name" "" "go mod download -json $module@$ref failed: $error"
    return
  fi
  dir="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  resolved="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Version"])')"
  version="${resolved#v}"
  out="$(binary "$namespace/$type" "$type" "$version")"
  if [[ -x "$out" ]]; then
    record provider "$name" "$version" ""
    return
  fi
  # A writable copy: the module cache is read-only, and module zips keep vendor/modules.txt
  # without the vendored code, so build from modules instead.
  cp -R "$dir" "$work/$type-$version"
  chmod -R u+w "$work/$type-$version"
  rm -rf "$work/$type-$version/vendor"
  log "$name: go build (from $module@$resolved)"
  if error="$(go_build "$name" "$work/$type-$version" "$out")"; then
    record provider "$name" "$version" ""
  else
    record provider "$name" "" "$error"
  fi
}

# At once: they share few compiled packages (plugin-framework 1.1.1 and 1.19.0, grpc 1.51 and 1.79).
# hashicorp/local shares external's newer framework, so it follows external in the same job.
# The demo builds the one its route needs: scripts/demo.tf's module source says which.
demo_route=ephemeral
if grep -qE '^[[:space:]]*source[[:space:]]*=[[:space:]]*"\./terraform"' "$repo/scripts/demo.tf"; then
  demo_route=data-source
fi
{
  if [[ $mode != demo || $demo_route == data-source ]]; then
    from_vendor hashicorp external 2.4.0 terraform-provider-external-v2.4.0-70b9be6.tar.gz \
      c550a87067ad0eee758a7306b4a04d997916c29b3b3d3286d82e762991bac16a
  fi
  if [[ $mode != demo || $demo_route == ephemeral ]]; then
    from_vendor hashicorp local 2.9.0 terraform-provider-local-v2.9.0-3561e41.tar.gz \
      d991f81e9b58b83e4a0099ea06691c2149c18de7c2845345db7f84b711d2c6ad
  fi
} &
hashicorp_builds=$!
from_vendor authress authress 2.0.39 terraform-provider-authress-v2.0.39-26be9ed.tar.gz \
  6051f27c09d4df758e5405670dc6d671031693c01242762a8346ab7ebf2cfaae &
authress_build=$!
wait "$hashicorp_builds"
wait "$authress_build"

if [[ $mode == full ]]; then
  # v1.2.0 is the newest the proxy serves (the v2 tags lack /v2 in go.mod) and the module's lower bound.
  from_proxy hashicorp external github.com/terraform-providers/terraform-provider-external v1.2.0 1.2.0
  # data "http" makes the newest Authress provider's first call (GET {aud}/v1/accounts/{id}, Bearer).
  from_proxy hashicorp http github.com/terraform-providers/terraform-provider-http v1.2.0 1.2.0
  from_proxy authress authress github.com/authress/terraform-provider-authress latest newest

  find_cli tofu
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

python3 - "$results" "$status_file" "$mirror" "$cli_config" "$mode" <<'PY'
import json, os, sys
results, status_file, mirror, cli_config, mode = sys.argv[1:]
status = {"mirror": mirror, "cli_config": cli_config, "providers": {}, "clis": {}}
if mode == "demo" and os.path.isfile(status_file):  # keep what a full build recorded beside the demo's part
    with open(status_file, encoding="utf-8") as f:
        earlier = json.load(f)
    status["providers"], status["clis"] = earlier.get("providers", {}), earlier.get("clis", {})
for line in open(results, encoding="utf-8"):
    kind, name, value, error = line.rstrip("\n").split("\t")
    key = "providers" if kind == "provider" else "clis"
    status[key][name] = {"version" if kind == "provider" else "path": value, "error": error.strip()}
tmp = status_file + ".tmp"
with open(tmp, "w", encoding="utf-8") as f:
    json.dump(status, f, indent=2)
os.replace(tmp, status_file)
recorded = {line.split("\t")[1] for line in open(results, encoding="utf-8")}
for key in ("providers", "clis"):
    for name, entry in status[key].items():
        if name not in recorded:
            continue
        print(f"build_providers: {name}: {entry.get('version') or entry.get('path') or 'MISSING: ' + entry['error']}", file=sys.stderr)
PY
