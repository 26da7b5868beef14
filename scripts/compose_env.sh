#!/usr/bin/env bash
# Write a compose env file from .env.example with every "change-me" value replaced by a
# random 32-hex-digit secret:
#   scripts/compose_env.sh            # writes .env (refuses to overwrite one)
#   scripts/compose_env.sh PATH       # writes PATH (make test-compose uses a temp file)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.env}
if [ "$out" = .env ] && [ -e .env ]; then
  echo "compose_env: .env exists; not overwriting it (delete it first to regenerate)" >&2
  exit 1
fi
umask 077
tmp="$out.tmp.$$"
while IFS= read -r line || [ -n "$line" ]; do
  if [[ "$line" =~ ^([A-Z0-9_]+)=change-me ]]; then
    secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    printf '%s=%s\n' "${BASH_REMATCH[1]}" "$secret"
  else
    printf '%s\n' "$line"
  fi
done < .env.example > "$tmp"
mv "$tmp" "$out"
echo "compose_env: wrote $out (mode 600) with fresh secrets"
