#!/usr/bin/env bash
# The PyPI ros-* wheels export CMake targets that name the Python of the machine that built them
# (/opt/python/cp3XX-cp3XX/...). find_package() of rosidl generators then fails in our venv.
# Point those paths at this venv's Python headers and numpy headers. Idempotent.
set -euo pipefail
: "${VIRTUAL_ENV:?activate the venv first}"
py_inc=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
np_inc=$(python -c "import numpy; print(numpy.get_include())")
[ -f "$py_inc/Python.h" ] || { echo "Python.h not found in $py_inc: install the Python headers (python3-dev)" >&2; exit 1; }
mapfile -t files < <(grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VIRTUAL_ENV/share" --include='*.cmake' || true)
for f in "${files[@]}"; do
  sed -i -E -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#${np_inc}#g" \
            -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_inc}#g" "$f"
done
left=$(grep -rlE '/opt/python' "$VIRTUAL_ENV/share" --include='*.cmake' | wc -l || true)
echo "patched ${#files[@]} CMake files; ${left} still name /opt/python"
