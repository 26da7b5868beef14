"""No secret in the repository: every tracked file is scanned for private keys, cloud
keys, tokens, passwords in URLs and Redis passwords. Documented placeholders (the
``change-me`` values of .env.example, ``{{VAR}}`` templates, ``$VAR`` references) are
allowed; anything else that looks like a credential fails the suite."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PATTERNS: dict[str, re.Pattern[str]] = {
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key": re.compile(r"aws_secret_access_key\s*[:=]\s*['\"]?([A-Za-z0-9/+=]{40})"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "password in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:([^\s@/'\"]+)@"),
    "requirepass": re.compile(r"requirepass\s+(\S+)"),
    "Redis user password": re.compile(r"^user\s+\S+\s+on\s+(?:.*?\s)?>(\S+)", re.M),
    # A quoted literal assigned to a secret-looking name (code, YAML, JSON).
    "assigned secret": re.compile(
        r"(?i)(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY)[A-Z0-9_]*['\"]?\s*[:=]\s*"
        r"['\"]([^'\"\s]{8,})['\"]"
    ),
    # NAME=value lines (.env files, shell, compose environment).
    "secret in an env line": re.compile(
        r"(?im)^[\s-]*(?:export\s+)?[A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|API_KEY)[A-Z0-9_]*"
        r"=([^\s#'\"]{8,})"
    ),
}

# Values that are documentation or indirection, not secrets.
PLACEHOLDER = re.compile(
    r"""^(?:
        change-?me.*|example.*|placeholder.*|dummy.*|redacted|\*+|x{3,}|\.\.\.
        |password|passwd|secret|token|pass|pw
        |(?:.*[-_])?(?:test|fake|dummy)(?:[-_].*)?   # test fixtures: "test-admin-token"
        |<[^>]*>                        # <password>
        |\{\{[A-Z0-9_]+\}\}             # {{VAR}} templates
        |\$\{?[A-Za-z_][A-Za-z0-9_]*.*   # $VAR, ${VAR:-...}
        |\{[^}]*\}.*                    # an f-string field
        |\#[0-9a-f]{64}                 # Redis' hashed password form
    )$""",
    re.X | re.I,
)
SKIP_SUFFIXES = (".png", ".jpg", ".ico", ".gz", ".parquet", ".whl", ".lock")


def tracked_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    return [ROOT / p for p in out.split("\0") if p and not p.endswith(SKIP_SUFFIXES)]


def findings(text: str, name: str) -> list[str]:
    found = []
    for what, pattern in PATTERNS.items():
        for match in pattern.finditer(text):
            value = match.group(1) if pattern.groups else match.group(0)
            if pattern.groups and PLACEHOLDER.match(value.strip("'\"")):
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{name}:{line}: {what}")
    return found


def test_no_tracked_file_holds_a_secret() -> None:
    files = tracked_files()
    assert len(files) > 20, "git ls-files found too little: is this a checkout?"
    problems: list[str] = []
    for path in files:
        if path.resolve() == Path(__file__).resolve() or not path.is_file():
            continue  # this file spells out the patterns it looks for
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        problems += findings(text, str(path.relative_to(ROOT)))
    assert not problems, "possible secrets:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "leak",
    [
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
        "key = AKIAIOSFODNN7EXAMPLX",
        "REDIS_URL=redis://app:s3cr3tPassw0rd@redis:6379/0",
        "requirepass hunter2hunter2",
        "user execution on >plainpassword123 ~fills +xadd",
        'EDGEBUS_ADMIN_TOKEN = "9f8e7d6c5b4a39281706"',
        "token: ghp_" + "a" * 36,
        'api_key: "d41d8cd98f00b204"',
        "EDGEBUS_ADMIN_TOKEN=d41d8cd98f00b204e980",
    ],
)
def test_the_scanner_catches_real_looking_secrets(leak: str) -> None:
    assert findings(leak, "probe"), leak


@pytest.mark.parametrize(
    "placeholder",
    [
        "REDIS_PASSWORD_EXECUTION=change-me-execution",
        "EDGEBUS_ADMIN_TOKEN=change-me",
        "user execution on {{REDIS_PASSWORD_EXECUTION}} ~fills",
        "user admin on #" + "ab" * 32 + " ~*",
        "REDIS_URL=redis://execution:${REDIS_PASSWORD_EXECUTION}@redis:6379/0",
        'expected = os.environ.get("EDGEBUS_ADMIN_TOKEN", "")',
        "redis://127.0.0.1:6379/0",
        "password = secrets.token_urlsafe(18)",
        'TOKEN = "test-admin-token"',
    ],
)
def test_documented_placeholders_are_allowed(placeholder: str) -> None:
    assert not findings(placeholder, "probe"), placeholder
