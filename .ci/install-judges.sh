#!/usr/bin/env bash
# Installs the external judges the interop tests use (see internal/judge):
#   - the ONNX checker: Debian python3-onnx (onnx 1.12) and python3-numpy;
#   - onnxruntime: npm onnxruntime-node, pinned in tools/judges/package-lock.json,
#     installed with `npm ci --ignore-scripts` (its install script only fetches
#     GPU binaries from a host this machine cannot reach; the CPU library ships
#     inside the npm package).
# Idempotent: installs only what is missing. Needs root for apt-get (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=()
if ! /usr/bin/python3 -c 'import onnx.checker, numpy' 2>/dev/null; then
	apt_pkgs+=(python3-onnx python3-numpy)
fi
if ! command -v node >/dev/null 2>&1; then
	apt_pkgs+=(nodejs)
fi
if ! command -v npm >/dev/null 2>&1; then
	apt_pkgs+=(npm)
fi
if [ "${#apt_pkgs[@]}" -gt 0 ]; then
	echo "install-judges: apt-get install ${apt_pkgs[*]}"
	sudo=""
	if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	$sudo apt-get install -y -qq "${apt_pkgs[@]}"
fi

judges=tools/judges
want="$(node -p "require('./$judges/package-lock.json').packages['node_modules/onnxruntime-node'].version")"
have=""
if [ -f "$judges/node_modules/onnxruntime-node/package.json" ] &&
	[ -f "$judges/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1" ]; then
	have="$(node -p "require('./$judges/node_modules/onnxruntime-node/package.json').version")"
fi
if [ "$have" != "$want" ]; then
	echo "install-judges: npm ci onnxruntime-node@$want in $judges"
	(cd "$judges" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --ignore-scripts --no-audit --no-fund)
fi

# Smoke checks: both judges load.
(cd "$judges" && node -e "const o = require('onnxruntime-node'); console.log('install-judges: onnxruntime-node ' + o.env.versions.common)")
/usr/bin/python3 -c "import onnx; print('install-judges: onnx ' + onnx.__version__ + ' (IR <= %d, opset <= %d)' % (onnx.IR_VERSION, onnx.defs.onnx_opset_version()))"
