#!/usr/bin/env bash
# Import the edgebus dashboards into a running Grafana (idempotent). See
# scripts/grafana_import.py --help; auth from GRAFANA_TOKEN or GRAFANA_USER/GRAFANA_PASSWORD.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="$root/.venv/bin/python"
[ -x "$py" ] || py="$(command -v python3)"
exec "$py" "$here/grafana_import.py" "$@"
