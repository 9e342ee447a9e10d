#!/usr/bin/env bash
# Print the path of a Terraform CLI (or, with --tofu, an OpenTofu CLI) on stdout.
# --no-build: only look, never build.
#
#   1. the command on PATH, when there is one;
#   2. else one built earlier into $CACHE/{terraform,tofu}-VERSION/bin;
#   3. else build it once with `go install` from the Go module proxy. Terraform v1.5.7 and
#      OpenTofu v1.6.3 are the newest releases without replace directives in go.mod, which
#      `go install module@version` refuses. A first build takes about 6 minutes on 2 cores.
#
# Progress and errors go to stderr; exit 1 with the reason when no CLI can be had.
set -euo pipefail

cache="${AGT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/authress-gitlab-token}"
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
  module="github.com/hashicorp/terraform@$version"
else
  version="${AGT_TOFU_VERSION:-v1.6.3}"
  module="github.com/opentofu/opentofu/cmd/tofu@$version"
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
  echo "find_terraform.sh: no $want on PATH or in $bindir; \`make e2e-tofu\` builds it (about 6 minutes)" >&2
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
tmpbin="$(mktemp -d)"
trap 'rm -rf "$tmpbin"' EXIT
echo "find_terraform.sh: building $want: go install $module (once; cached in $bindir)" >&2
start=$SECONDS
if ! GOBIN="$tmpbin" GOCACHE="$cache/go-build" CGO_ENABLED=0 GOFLAGS="-trimpath" \
  go install "$module" >"$tmpbin/log" 2>&1; then
  grep -v '^go: downloading' "$tmpbin/log" | tail -n 20 >&2
  echo "find_terraform.sh: go install $module failed" >&2
  exit 1
fi
mv "$tmpbin/$want" "$bindir/$want"
echo "find_terraform.sh: built $bindir/$want in $((SECONDS - start)) s" >&2
echo "$bindir/$want"
