#!/usr/bin/env bash
# dotnet ARGS...: runs dotnet with TMPDIR in a fresh directory that is removed afterwards. The .NET SDK
# (seen with 10.0.401) makes two empty 0700 directories with random 6-character names (mkdtemp) in
# $TMPDIR at the start of every build/test/publish/restore - its workload installer's temporary
# package directories - and never removes them (dotnet/sdk#35353); /tmp held ~1500 of them.
set -uo pipefail
dir=$(mktemp -d "${TMPDIR:-/tmp}/gz-dotnet.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
TMPDIR=$dir dotnet "$@"
