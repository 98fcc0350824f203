#!/bin/sh
# Installs what is missing, then builds and runs every test:
#   1. gcc release build with -Wall -Wextra -Werror: unit tests, corpus replay, integration
#   2. clang ASan+UBSan build with libFuzzer targets: unit tests and libFuzzer corpus replay
#   3. gcc unoptimised (-O0) build with -Werror: unit tests and corpus replay (warnings and
#      behaviour that only show without optimisation)
# Each build lives in its own directory under build/. Exits non-zero on the first failure.
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

JOBS=$(nproc 2>/dev/null || echo 2)

echo "== release build (gcc, -Werror) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSW_WERROR=ON >/dev/null
cmake --build build -j "$JOBS"
ctest --test-dir build --output-on-failure -j "$JOBS"

echo "== ASan+UBSan build (clang) with libFuzzer corpus replay =="
CC=clang cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DSW_WERROR=ON -DSW_SANITIZE=ON \
    -DSW_FUZZ=ON -DSW_INTEGRATION=OFF >/dev/null
cmake --build build/asan -j "$JOBS"
ctest --test-dir build/asan --output-on-failure -j "$JOBS"

echo "== unoptimised build (gcc -O0, -Werror) =="
cmake -S . -B build/debug -DCMAKE_BUILD_TYPE=Debug -DSW_WERROR=ON -DSW_INTEGRATION=OFF >/dev/null
cmake --build build/debug -j "$JOBS"
ctest --test-dir build/debug --output-on-failure -j "$JOBS"
