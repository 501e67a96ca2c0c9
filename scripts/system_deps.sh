#!/usr/bin/env bash
# Debian packages quantviz uses: graphviz's `dot` (SVG/PNG of graphs). Installs what is missing
# when we are root with apt-get; otherwise says what to install and carries on (DOT text still works).
set -u
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null || \
    echo "warning: apt-get could not install ${need[*]}; graph images will be skipped" >&2
else
  echo "warning: please install ${need[*]} (e.g. sudo apt-get install ${need[*]}); graph images will be skipped" >&2
fi
exit 0
