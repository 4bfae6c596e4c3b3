#!/usr/bin/env bash
# Builds the deployment tools the manifest tests need, from the Go module proxy, and caches
# them under ${MEDFLOW_CACHE_DIR:-~/.cache/medflow}/deploy-tools (shared by every clone):
#
#   bin/kustomize       sigs.k8s.io/kustomize/kustomize/v5       renders k8s/overlays/*
#   bin/kubeconform     github.com/yannh/kubeconform             validates against k8s/schemas
#   bin/terraform       github.com/hashicorp/terraform           fmt + validate infra/terraform
#   plugins/registry.terraform.io/hashicorp/{kubernetes,helm}/<version>/linux_amd64/
#                       the providers, for `terraform init -plugin-dir`
#
# Why these versions: the module proxy reachable here serves only some versions.
#  - terraform 1.9+ declares `replace` directives in its go.mod, which `go install m@v`
#    refuses; 1.8.5 is the newest release installable with `go install`.
#  - the providers' v2/v3 releases are not on the proxy as Go modules (their go.mod
#    keeps the v1 path); v1.13.4 (kubernetes) and v1.3.2 (helm) are the newest there.
#    Their go.mod has `replace` directives too, so they are built with `go build` inside
#    a copy of the module source (replacements only apply in the main module).
#    They validate the resources the modules use (helm_release, kubernetes_namespace,
#    kubernetes_secret, kubernetes_config_map) with the same arguments as the current
#    releases; see infra/terraform/README.md.
# A first build takes several minutes on 2 cores; later runs only check the versions.
# Usage: scripts/deploy-tools.sh [--print-env]   (--print-env: print MEDFLOW_DEPLOY_TOOLS=<dir>)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${MEDFLOW_CACHE_DIR:-${HOME:?HOME is not set}/.cache/medflow}"
TOOLS="$CACHE_DIR/deploy-tools"
BIN="$TOOLS/bin"
PLUGINS="$TOOLS/plugins"
LOGS="$TOOLS/logs"
STAMPS="$TOOLS/stamps"   # what each binary was built from (copied sources carry no version)
case ":$PATH:" in *:/usr/local/go/bin:*) ;; *) PATH="$PATH:/usr/local/go/bin" ;; esac
export PATH CGO_ENABLED=0

KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5
KUSTOMIZE_VERSION=v5.8.2          # v5.8.3 needs Go 1.27
KUBECONFORM_MODULE=github.com/yannh/kubeconform
KUBECONFORM_VERSION=v0.7.0
TERRAFORM_MODULE=github.com/hashicorp/terraform
TERRAFORM_VERSION=v1.8.5
PROVIDERS=(
  "kubernetes github.com/hashicorp/terraform-provider-kubernetes v1.13.4"
  "helm github.com/hashicorp/terraform-provider-helm v1.3.2"
)

info() { printf 'deploy-tools: %s\n' "$*" >&2; }
die() { printf 'ERROR deploy-tools: %s\n' "$1" >&2; [[ -n "${2:-}" && -s "$2" ]] && tail -n 25 "$2" >&2; exit 1; }

# built_from BINARY MODULE VERSION -- the binary exists and `go version -m` says it was
# built from MODULE@VERSION (main module or, for copied sources, the recorded stamp).
built_from() {
  local bin="$1" module="$2" version="$3" stamp
  stamp="$STAMPS/$(basename "$bin").version"
  [[ -x "$bin" ]] || return 1
  [[ -f "$stamp" ]] && grep -qxF "$module $version" "$stamp" && return 0
  go version -m "$bin" 2>/dev/null | awk -v m="$module" -v v="$version" \
    '($1 == "mod" || $1 == "path") && $2 == m && $3 == v {ok = 1} END {exit !ok}'
}

# go_install NAME PACKAGE VERSION MODULE
go_install() {
  local name="$1" package="$2" version="$3" module="$4" log="$LOGS/$1.log" tmp
  built_from "$BIN/$name" "$module" "$version" && return 0
  info "building $name $version (go install $package@$version; log: $log)"
  tmp="$(mktemp -d "$TOOLS/.build.XXXXXX")"
  local t0=$SECONDS
  GOBIN="$tmp" go install -trimpath -ldflags="-s -w" "$package@$version" >"$log" 2>&1 || { rm -rf "$tmp"; die "go install $package@$version failed" "$log"; }
  # the one binary go install wrote (named after the package path's last element that is not
  # a major-version suffix: sigs.k8s.io/kustomize/kustomize/v5 gives `kustomize`)
  local built=("$tmp"/*)
  [[ ${#built[@]} -eq 1 && -f "${built[0]}" ]] || { rm -rf "$tmp"; die "go install $package@$version left no single binary" "$log"; }
  mv -f "${built[0]}" "$BIN/$name"
  echo "$module $version" >"$STAMPS/$name.version"
  rm -rf "$tmp"
  info "built $name in $((SECONDS - t0)) s"
}

# vbom_util DIR -- a local module vbom.ml/util whose sortorder package is the same code
# from github.com/fvbommel/sortorder (where its author moved it).
vbom_util() {
  local dir="$1" src
  src="$(go mod download -json github.com/fvbommel/sortorder@v1.0.1 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$src" ]] || die "go mod download github.com/fvbommel/sortorder@v1.0.1 gave no source directory"
  mkdir -p "$dir/sortorder"
  cp "$src"/*.go "$dir/sortorder/"
  chmod -R u+w "$dir"
  rm -f "$dir"/sortorder/*_test.go
  printf 'module vbom.ml/util\n\ngo 1.12\n' >"$dir/go.mod"
}

# build_provider NAME MODULE VERSION -- go build in a writable copy of the module source
# (its go.mod `replace` directives then apply), laid out for `terraform init -plugin-dir`.
build_provider() {
  local name="$1" module="$2" version="$3" log="$LOGS/provider-$1.log" dir src tmp
  local plain="${version#v}"
  dir="$PLUGINS/registry.terraform.io/hashicorp/$name/$plain/linux_amd64"
  local out="$dir/terraform-provider-${name}_v$plain"
  built_from "$out" "$module" "$version" && return 0
  info "building terraform provider $name $version (go build; log: $log)"
  src="$(go mod download -json "$module@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -d "$src" ]] || die "go mod download $module@$version gave no source directory"
  # A fixed build directory per provider version: Go's build cache then recognises every
  # package on a rebuild (paths are part of its keys even with -trimpath for replacements).
  tmp="$TOOLS/build/$name-$version"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  cp -r "$src/." "$tmp/src"
  chmod -R u+w "$tmp/src"
  # Replacements into ./vendor/ name directories the module zip does not carry (and no
  # package of the provider imports): drop them so the module graph loads.
  sed -i '/=> \.\/vendor\//d' "$tmp/src/go.mod"
  rm -rf "$tmp/src/vendor"
  # kubectl 0.18/0.19 (a dependency of both) requires vbom.ml/util, a vanity path that no
  # longer resolves; its one package, sortorder, lives on as github.com/fvbommel/sortorder.
  vbom_util "$tmp/vbom-util"
  echo "replace vbom.ml/util => $tmp/vbom-util" >>"$tmp/src/go.mod"
  mkdir -p "$dir"
  local t0=$SECONDS
  if ! (cd "$tmp/src" && GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$tmp/provider" . ) >"$log" 2>&1; then
    rm -rf "$tmp"
    die "building provider $name $version failed" "$log"
  fi
  mv -f "$tmp/provider" "$out"
  echo "$module $version" >"$STAMPS/$(basename "$out").version"   # not in the plugin dir: init scans it
  rm -rf "$tmp"
  info "built provider $name in $((SECONDS - t0)) s"
}

build_all() {
  mkdir -p "$BIN" "$PLUGINS" "$LOGS" "$STAMPS"
  command -v go >/dev/null 2>&1 || die "Go is required (expected /usr/local/go/bin/go or go on PATH)"
  go_install kubeconform "$KUBECONFORM_MODULE/cmd/kubeconform" "$KUBECONFORM_VERSION" "$KUBECONFORM_MODULE"
  go_install kustomize "$KUSTOMIZE_MODULE" "$KUSTOMIZE_VERSION" "$KUSTOMIZE_MODULE"
  go_install terraform "$TERRAFORM_MODULE" "$TERRAFORM_VERSION" "$TERRAFORM_MODULE"
  local p name module version
  for p in "${PROVIDERS[@]}"; do
    read -r name module version <<<"$p"
    build_provider "$name" "$module" "$version"
  done
}

mkdir -p "$TOOLS"
# One build at a time per machine (several clones, or the test command and a developer).
exec 9>"$TOOLS/.lock"
flock 9
started=$(date +%s)
build_all
info "tools ready in $TOOLS ($(( $(date +%s) - started )) s)"
if [[ "${1:-}" == "--print-env" ]]; then
  echo "MEDFLOW_DEPLOY_TOOLS=$TOOLS"
fi
