#!/usr/bin/env bash
# Print the path of a Terraform CLI (or, with --tofu, an OpenTofu CLI) on stdout.
# --no-build: only look, never build. build_providers.sh calls this under its lock.
#
#   1. the command on PATH, when there is one;
#   2. else one built earlier into $CACHE/{terraform,tofu}-VERSION/bin;
#   3. else build it once from the Go module proxy:
#      - Terraform v1.5.7 (AGT_TF_VERSION) with `go install`: the newest release without replace
#        directives in go.mod, which `go install module@version` refuses.
#      - OpenTofu v1.12.6 (AGT_TOFU_VERSION) from its source tree: the proxy serves each release's
#        module zip, which is the whole tree with its go.mod; `go build ./cmd/tofu` inside it honours
#        the replace directives (github.com/opentofu/hcl/v2 for hashicorp/hcl/v2), whose modules come
#        from the proxy too. AGT_TOFU_VERSION=v1.6.3 (no replace directives) uses `go install`.
#
# Progress and errors go to stderr; exit 1 with the reason when no CLI can be had.
set -euo pipefail

cache="${AGT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authress-gitlab-token-e2e}"
want=terraform
build=1
for arg in "$@"; do
  case "$arg" in
    --tofu) want=tofu ;;
    --no-build) build=0 ;;
    *) echo "find_terraform.sh: unknown argument $arg (use --tofu, --no-build)" >&2; exit 2 ;;
  esac
done

if [[ "$want" == terraform ]]; then
  version="${AGT_TF_VERSION:-v1.5.7}"
  module="github.com/hashicorp/terraform"
  package="."
else
  version="${AGT_TOFU_VERSION:-v1.12.6}"
  module="github.com/opentofu/opentofu"
  package="./cmd/tofu"
fi
bindir="$cache/$want-$version/bin"

if command -v "$want" >/dev/null 2>&1; then
  command -v "$want"
  exit 0
fi
if [[ -x "$bindir/$want" ]]; then
  echo "$bindir/$want"
  exit 0
fi
if [[ $build == 0 ]]; then
  echo "find_terraform.sh: no $want on PATH or in $bindir" >&2
  exit 1
fi
if ! command -v go >/dev/null 2>&1; then
  if [[ -x /usr/local/go/bin/go ]]; then
    PATH="$PATH:/usr/local/go/bin"
  else
    echo "find_terraform.sh: no $want on PATH and no go command to build it" >&2
    exit 1
  fi
fi

mkdir -p "$bindir"
tmp="$(mktemp -d)"
trap 'chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT
export GOCACHE="$cache/go-build" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
start=$SECONDS
if [[ "$want" == terraform || "$version" == v1.6.* ]]; then
  target="$module${package#.}@$version"
  echo "find_terraform.sh: building $want: go install $target (once; cached in $bindir)" >&2
  if ! GOBIN="$tmp" GOFLAGS="-trimpath" go install -ldflags="-s -w" "$target" >"$tmp/log" 2>&1; then
    grep -v '^go: downloading' "$tmp/log" | tail -n 20 >&2
    echo "find_terraform.sh: go install $target failed" >&2
    exit 1
  fi
else
  echo "find_terraform.sh: building $want $version from its source tree (go mod download $module@$version; go build $package; once, cached in $bindir)" >&2
  if ! info="$(go mod download -json "$module@$version" 2>"$tmp/log")"; then
    printf '%s\n' "$info" >&2
    echo "find_terraform.sh: go mod download -json $module@$version failed" >&2
    exit 1
  fi
  dir="$(printf '%s' "$info" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  # As its release builds do (.goreleaser.yaml): without it the version reads "-dev".
  ldflags="-X github.com/opentofu/opentofu/version.dev=no"
  cp -R "$dir" "$tmp/src"
  chmod -R u+w "$tmp/src"
  if ! (cd "$tmp/src" && GOFLAGS="-mod=mod -trimpath -buildvcs=false" go build -ldflags="-s -w $ldflags" -o "$tmp/$want" "$package") \
    >"$tmp/log" 2>&1; then
    grep -v '^go: downloading' "$tmp/log" | tail -n 20 >&2
    echo "find_terraform.sh: go build $package in $module@$version failed" >&2
    exit 1
  fi
fi
mv "$tmp/$want" "$bindir/$want"
echo "find_terraform.sh: built $bindir/$want in $((SECONDS - start)) s" >&2
echo "$bindir/$want"
