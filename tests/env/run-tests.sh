#!/usr/bin/env bash
# `make test`: install what is missing, then, for each MariaDB version, bring
# the local services up on it, run the whole test suite against them, and
# stop again whatever this run started (services that were already up before
# are left running).
#
# BT_MARIADB picks the versions: unset, both tested lines, 10.11 then 11.8;
# `BT_MARIADB=11.8 make test` one of them. Arguments go to the test binaries
# (`tests/env/run-tests.sh NAME` runs the tests whose names contain NAME).
# Every version runs even when an earlier one failed; the exit status is
# non-zero if any did, and the last lines say which. The versions share the
# ports, so another version's services are stopped while one runs, and
# brought up again at the end if they ran before.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."

versions=${BT_MARIADB:-10.11 11.8}
# Build once, before any service starts: a compile error fails fast, and the
# time the suites take is the tests' own.
cargo test --all-targets --locked --no-run

# The versions whose services run now (to bring them back at the end).
was_up=()
for version in 10.11 11.8; do
  BT_MARIADB=$version bash tests/env/services.sh status >/dev/null 2>&1 && was_up+=("$version")
done

summary=()
failed=0
for version in $versions; do
  export BT_MARIADB=$version
  printf '\n==> MariaDB %s: the whole suite\n' "$version"
  started_at=$(date +%s)
  started=
  if ! bash tests/env/services.sh status >/dev/null 2>&1; then
    started=1
    # Another version's services hold the same ports: stop them first.
    bash tests/env/services.sh down >/dev/null
  fi
  rc=0
  bash tests/env/services.sh up && cargo test --all-targets --locked -- "$@" || rc=$?
  # tests/kafka_cluster.rs stops its three-node cluster itself; should the
  # test process have been killed, its nodes are stopped here (by PID file).
  BT_CLUSTER_STATE_DIR="$PWD/target/kafka-cluster-tests" bash tests/env/kafka-cluster.sh down >/dev/null 2>&1 || true
  if [ -n "$started" ]; then
    bash tests/env/services.sh down || true
  fi
  took=$(($(date +%s) - started_at))
  if [ "$rc" = 0 ]; then
    summary+=("MariaDB $version: passed in ${took}s")
  else
    summary+=("MariaDB $version: FAILED (exit $rc) after ${took}s")
    failed=1
  fi
done

for version in "${was_up[@]}"; do
  BT_MARIADB=$version bash tests/env/services.sh status >/dev/null 2>&1 ||
    BT_MARIADB=$version bash tests/env/services.sh up >/dev/null || true
done

printf '\n'
printf '%s\n' "${summary[@]}"
exit "$failed"
