#!/usr/bin/env bash
# `make test`: install what is missing, bring the local services up, run the
# whole test suite against them, and stop again whatever this run started
# (services that were already up before are left running).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."

started=
if ! bash tests/env/services.sh status >/dev/null 2>&1; then
  started=1
  trap 'bash tests/env/services.sh down' EXIT
fi
bash tests/env/services.sh up
cargo test --all-targets --locked -- "$@"
