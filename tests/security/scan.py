"""Secret scanning of emitted files and captured output: planted fake secrets and the usual credential shapes.

Two kinds of hit:

- **planted**: the exact values of :data:`FAKE_SECRETS`, which the tests put in the environment of every
  ``mlplan plan / deploy / preflight`` they run; any appearance in a plan folder, the deploy state, the server
  logs or the captured stdout/stderr means mlplan copied an environment secret somewhere;
- **pattern**: credential shapes whatever their value (AWS access key ids, ``aws_secret_access_key = ...``,
  PEM private keys, GitHub / Hugging Face / Slack / Pulumi tokens, ``password: <value>``), so a secret that was
  never planted (a kubeconfig token, a developer's real key) is caught too.

Used by ``tests/faults`` (deploy logs and state), ``tests/security`` (every emitted file) and
``benchmarks/security_report.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: Fake but well-formed secrets (AKIA + 16 upper-case alphanumerics is the AWS access key id shape).
FAKE_SECRETS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "AKIAMLPLANFAKE7TEST1",
    "AWS_SECRET_ACCESS_KEY": "mLpLaNfAkEsEcReT/K7MDENG/bPxRfiCYzzSECRETzz",
    "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEMLPLANFAKESESSIONTOKENzzzzzzzzzzzzzzzzzzzz",
    "PULUMI_ACCESS_TOKEN": "pul-0123456789abcdef0123456789abcdef6d1a2b3c",
    "PULUMI_CONFIG_PASSPHRASE": "mlplan-fake-passphrase-6f1d",
    "GITHUB_TOKEN": "ghp_MLPLANfake0123456789abcdefghijklmnop",
    "HF_TOKEN": "hf_MLPLANfakeTOKEN0123456789abcdefghij",
    "MLPLAN_TEST_DB_PASSWORD": "mlplan-fake-password-9c2e",
}

#: Credential shapes (name, regex). The AWS patterns follow AWS's documented key formats; the others are the
#: issuers' documented token prefixes (GitHub ghp_/gho_/ghs_/github_pat_, Hugging Face hf_, Slack xox?-,
#: Pulumi pul-).
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws access key id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b")),
    ("aws secret access key", re.compile(
        r"(?i)aws_?secret_?access_?key\s*[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{30,}")),
    ("aws session token", re.compile(r"(?i)aws_?session_?token\s*[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{20,}")),
    ("private key", re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")),
    ("github token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})")),
    ("hugging face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}")),
    ("slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("pulumi token", re.compile(r"\bpul-[a-f0-9]{40}\b")),
    # a literal value after password/passphrase (not a ${VAR}, <placeholder> or {{ template }})
    ("password", re.compile(r"(?i)(?:password|passwd|passphrase)\b[\"']?\s*[:=]\s*[\"']?(?![$<{])[^\s\"',}]{6,}")),
    ("bearer token", re.compile(r"(?i)\bauthorization:\s*bearer\s+[A-Za-z0-9._~+/-]{20,}")),
)


@dataclass(frozen=True)
class Hit:
    where: str
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.where}: {self.kind}: {self.excerpt}"


def _excerpt(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 30):min(len(text), end + 10)].split())[:120]


def scan_text(text: str, where: str, planted: Iterable[str] = FAKE_SECRETS.values()) -> list[Hit]:
    hits: list[Hit] = []
    for value in planted:
        i = text.find(value)
        if i >= 0:
            hits.append(Hit(where, "planted secret", _excerpt(text, i, i + len(value))))
    for kind, rx in PATTERNS:
        for m in rx.finditer(text):
            hits.append(Hit(where, kind, _excerpt(text, m.start(), m.end())))
    return hits


def scan_tree(root: Path, planted: Iterable[str] = FAKE_SECRETS.values()) -> tuple[int, list[Hit]]:
    """(files scanned, hits) over every regular file under ``root`` (binary files read as latin-1)."""
    planted = tuple(planted)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    hits: list[Hit] = []
    for p in files:
        data = p.read_bytes()
        text = data.decode("utf-8") if _is_utf8(data) else data.decode("latin-1")
        hits += scan_text(text, str(p.relative_to(root)), planted)
    return len(files), hits


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
