#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian 12 machine:
# Nix (no daemon, no substituters), podman with runc, skopeo, umoci, a registry,
# fakeroot/proot/fakechroot, patchelf and a static busybox (the stand-in
# nixpkgs copies programs into the store with them), nginx and redis (the
# stand-in's, for nixpkgs' examples), and the Python test-only packages.
# Safe to run again: each step is skipped when already done.
set -euo pipefail

need_apt=()
for cmd_pkg in nix-build:nix-bin nix-build:nix-setup-systemd podman:podman runc:runc skopeo:skopeo umoci:umoci \
               docker-registry:docker-registry htpasswd:apache2-utils fakeroot:fakeroot \
               proot:proot fakechroot:fakechroot pigz:pigz zstd:zstd curl:curl \
               busybox:busybox-static patchelf:patchelf nginx:nginx-light redis-server:redis-server \
               redis-cli:redis-tools; do
  cmd=${cmd_pkg%%:*}; pkg=${cmd_pkg#*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_apt+=(ca-certificates)
# The stand-in's builds run on busybox: it must be the static one.
if command -v busybox >/dev/null 2>&1 && ! LC_ALL=C ldd "$(command -v busybox)" 2>&1 | grep -q 'not a dynamic'; then
  need_apt+=(busybox-static)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # nix-setup-systemd creates the nixbld build users; keep our nix.conf edits.
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${need_apt[@]}" >/dev/null
fi
if ! getent group nixbld >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq -o Dpkg::Options::=--force-confold nix-setup-systemd >/dev/null
fi

# No binary cache is reachable here: without an empty substituters list every
# build first waits on look-ups. Builds run in Nix's sandbox, as they do by
# default on Linux (Debian's nix.conf turns it off): the stand-in packages in
# tests/hostpkgs.nix are copies in the store, and the tests turn the sandbox
# on for their own builds in any case.
mkdir -p /etc/nix
touch /etc/nix/nix.conf
for setting in 'sandbox = true' 'substituters =' 'build-users-group = nixbld'; do
  key=${setting%% =*}
  if grep -q "^$key *=" /etc/nix/nix.conf; then
    sed -i "s|^$key *=.*|$setting|" /etc/nix/nix.conf
  else
    printf '%s\n' "$setting" >> /etc/nix/nix.conf
  fi
done

# crun fails on these machines (hybrid cgroups, RLIMIT_NOFILE); runc works.
if [ ! -f /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf <<'CONF'
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
CONF
fi

# Test-only Python packages and checkers, for the machine's python3 (the one
# the tests run). The builder itself needs none of them.
# spdx-tools and cyclonedx-python-lib (with jsonschema) are the SBOM formats'
# own validators, for the SBOM tests.
python3 -c 'import pytest, hypothesis, ruff, mypy, spdx_tools, cyclonedx, jsonschema' 2>/dev/null ||
  python3 -m pip install -q pytest hypothesis ruff mypy spdx-tools==0.8.5 \
    'cyclonedx-python-lib[json-validation]==11.12.0' jsonschema
