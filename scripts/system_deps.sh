#!/usr/bin/env bash
# Debian packages quantviz uses: graphviz's `dot` (SVG/PNG of graphs), g++ (the kernels in kernels/) and
# chromium + chromium-driver (the real-browser tests), nodejs (`node --check` of the viewer's JavaScript). Installs what is missing when we are root with apt-get; otherwise says what
# to install and carries on (DOT text still works). Tests that need a missing tool skip with a message locally
# and FAIL under CI=true (tests/conftest.py require_tool), so a CI run never passes without them.
set -u
need=()
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v node >/dev/null 2>&1 || need+=(nodejs)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
effect=""
case " ${need[*]} " in *" graphviz "*) effect="the app shows DOT text instead of graph images; " ;; esac
case " ${need[*]} " in *" g++ "*) effect="${effect}the C++ kernels and their tests cannot build; " ;; esac
case " ${need[*]} " in *" graphviz "*|*" chromium "*|*" chromium-driver "*|*" nodejs "*)
  if [ "${CI:-}" = "true" ]; then
    effect="${effect}the browser, report and JavaScript tests will FAIL (CI=true)"
  else
    effect="${effect}the browser, report and JavaScript tests will skip (they fail under CI=true)"
  fi ;;
esac
effect="${effect%; }"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null || \
    echo "warning: apt-get could not install ${need[*]}; $effect" >&2
else
  echo "warning: please install ${need[*]} (e.g. sudo apt-get install ${need[*]}); $effect" >&2
fi
exit 0
