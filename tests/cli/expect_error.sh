#!/usr/bin/env bash
# Runs an `mpq` command line that must be refused: it must exit with a clean error status (1 or 2, not a
# crash: signals give >= 128) and print a message matching REGEX on stderr.
# Usage: expect_error.sh REGEX MPQ_BINARY ARGS...
set -u
regex=$1
shift
err=$("$@" 2>&1 >/dev/null)
status=$?
if [[ $status -eq 0 ]]; then
  echo "FAIL: exit status 0, expected an error; stderr: $err"
  exit 1
fi
if [[ $status -ge 128 || $status -gt 2 ]]; then
  echo "FAIL: exit status $status (a crash, not a clean error); stderr: $err"
  exit 1
fi
if ! grep -Eq -- "$regex" <<<"$err"; then
  echo "FAIL: stderr does not match /$regex/: $err"
  exit 1
fi
echo "ok: status $status, message: $err"
