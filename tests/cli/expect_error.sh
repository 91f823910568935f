#!/usr/bin/env bash
# Runs an `mpq` command line that must be refused: it must exit with exactly STATUS (2 usage error, 1
# runtime error; a crash gives >= 128) and print a message matching REGEX on stderr.
# Usage: expect_error.sh STATUS REGEX MPQ_BINARY ARGS...
set -u
want=$1
regex=$2
shift 2
err=$("$@" 2>&1 >/dev/null)
status=$?
if [[ $status -eq 0 ]]; then
  echo "FAIL: exit status 0, expected an error; stderr: $err"
  exit 1
fi
if [[ $status -ne $want ]]; then
  echo "FAIL: exit status $status, expected $want; stderr: $err"
  exit 1
fi
if ! grep -Eq -- "$regex" <<<"$err"; then
  echo "FAIL: stderr does not match /$regex/: $err"
  exit 1
fi
echo "ok: status $status, message: $err"
