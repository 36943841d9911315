#!/usr/bin/env bash
# Installs what the editor tests need on a fresh Debian machine, and nothing into the repo:
#  - Debian's chromium (the browser that drives code-server), libkrb5-dev (a native module of
#    code-server links it) and ripgrep (stands in for @vscode/ripgrep's download);
#  - code-server 4.100.3 (= VS Code 1.100.3, the last that runs on Node 20) from npm, into
#    $MODELOPS_E2E_HOME (default ~/.cache/modelops-debugger-e2e), reused when present.
# Prints the code-server binary's path on its last line.
set -euo pipefail
CS_VERSION=4.100.3
E2E_HOME=${MODELOPS_E2E_HOME:-${HOME:-/root}/.cache/modelops-debugger-e2e}
CS_HOME="$E2E_HOME/code-server-$CS_VERSION"

need=()
for package in chromium libkrb5-dev ripgrep; do dpkg -s "$package" >/dev/null 2>&1 || need+=("$package"); done
if ((${#need[@]})); then
  echo "installing ${need[*]} (apt)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x "$CS_HOME/node_modules/.bin/code-server" ]; then
  echo "installing code-server@$CS_VERSION into $CS_HOME (npm, about a minute)" >&2
  mkdir -p "$CS_HOME"
  [ -f "$CS_HOME/package.json" ] || (cd "$CS_HOME" && npm init -y >/dev/null)
  # @vscode/ripgrep's postinstall would download rg; its download cache is seeded with Debian's
  for pair in 1.15.11:v13.0.0-10 1.17.1:v15.0.1; do
    cache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-${pair%%:*}"
    mkdir -p "$cache"
    tar czf "$cache/ripgrep-${pair##*:}-x86_64-unknown-linux-musl.tar.gz" -C /usr/bin rg
  done
  # unsafe_perm: the postinstall refuses root without it; yes: node-pty runs `npx node-gyp`
  (cd "$CS_HOME" && npm_config_unsafe_perm=true npm_config_yes=true npm install --no-audit --no-fund "code-server@$CS_VERSION" >"$CS_HOME/install.log" 2>&1) \
    || { tail -40 "$CS_HOME/install.log" >&2; exit 1; }
fi
echo "$CS_HOME/node_modules/.bin/code-server"
