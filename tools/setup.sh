#!/usr/bin/env bash
# Installs the Debian 12 packages kvlab needs (only when one is missing; needs
# root), then configures and builds into build/ (Release). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-yaml: the analysis reads config.resolved.yaml; chromium: a test screenshots
# the analysis' report.html headless.
packages=(g++ cmake ninja-build pkg-config libeigen3-dev libhdf5-dev libyaml-cpp-dev libfmt-dev
          libcli11-dev catch2 libopenmpi-dev openmpi-bin python3-numpy python3-pandas python3-matplotlib
          python3-h5py python3-yaml chromium python3-dev pybind11-dev python3-pybind11 python3-pytest)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build -j "$(nproc)"
