#!/usr/bin/env bash
# Debian packages quantviz uses: graphviz's `dot` (SVG/PNG of graphs), g++ (the kernels in kernels/) and
# chromium + chromium-driver (the real-browser tests). Installs what is missing when we are root with apt-get; otherwise says what
# to install and carries on (DOT text still works; browser tests skip with a message).
set -u
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null || \
    echo "warning: apt-get could not install ${need[*]}; graph images or browser tests will be skipped" >&2
else
  echo "warning: please install ${need[*]} (e.g. sudo apt-get install ${need[*]}); graph images or browser tests will be skipped" >&2
fi
exit 0
