#!/bin/sh
# Render the Redis ACL file from its template and the environment:
#   render_acl.sh TEMPLATE OUT
# Every {{VAR}} in TEMPLATE becomes "#<sha256 of $VAR>" (Redis' hashed-password form), so
# no password is ever written in clear. Refuses (exit 2, naming the variable) a variable
# that is unset, shorter than 16 characters, not URL-safe (it goes into REDIS_URL), or
# still the placeholder of .env.example.
set -eu
template=$1
out=$2

fail() { echo "render_acl: $*" >&2; exit 2; }

[ -r "$template" ] || fail "cannot read template $template"
names=$(grep -v '^#' "$template" | grep -o '{{[A-Z0-9_]*}}' | tr -d '{}' | sort -u)
[ -n "$names" ] || fail "no {{VAR}} placeholders in $template"

umask 077
tmp="$out.tmp.$$"
cp "$template" "$tmp"
for name in $names; do
  eval "value=\${$name-}"
  [ -n "$value" ] || { rm -f "$tmp"; fail "$name is not set (put it in .env; scripts/compose_env.sh writes one)"; }
  case "$value" in
    change-me*) rm -f "$tmp"; fail "$name still has the placeholder value of .env.example (run scripts/compose_env.sh)" ;;
    *[!A-Za-z0-9._~-]*) rm -f "$tmp"; fail "$name must be URL-safe: letters, digits and . _ ~ - only" ;;
  esac
  [ "${#value}" -ge 16 ] || { rm -f "$tmp"; fail "$name is too short (16 characters at least)"; }
  digest=$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)
  sed -i "s/{{$name}}/#$digest/g" "$tmp"
done
# Drop the comments: Redis' aclfile accepts only "user" lines (and blank ones).
grep '^user ' "$tmp" > "$out"
rm -f "$tmp"
