"""Print a security table per example plan (and per factory plan with ``--factories``): manifests checked,
checkov passed / failed / baselined, Pod Security Standards "restricted" violations, secrets found, IAM
wildcard grants, public exposures and residency violations.

    .venv/bin/python benchmarks/security_report.py [--factories] [--markdown]

Each plan folder is written by the real writer (examples: the real optimizer) with fake secrets planted in the
environment; checkov runs once over every manifest and the Dockerfile (``.venv-checkov``, skipped with a note
when absent); the Pulumi program runs under Pulumi's mocks for the IAM / public / residency columns. The checks
are those of ``tests/security`` (``tests/security/audit.py``). Exit status 1 if anything is found that the
baseline (``tests/security/checkov-baseline.yaml``) does not accept.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.security import audit
from tests.security.scan import FAKE_SECRETS, scan_tree


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--factories", action="store_true", help="also report every hand-built factory plan")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # pulumi-aws import-time aliases
    os.environ.update(FAKE_SECRETS)
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="mlplan-security-"))
    try:
        folders: dict[str, tuple[Path, object]] = {}
        for spec in audit.example_specs():
            folders[spec.stem] = (work / spec.stem, audit.emit_example(spec, work / spec.stem))
        if args.factories:
            for name in audit.factory_names():
                folders[f"factory:{name}"] = (work / name, audit.emit_factory(name, work / name))

        scan_root = work / "checkov-scan"
        owner: dict[str, str] = {}
        for name, (folder, _) in folders.items():
            for f in audit.manifest_files(folder):
                rel = f"{folder.name}/{f.relative_to(folder).as_posix().replace('/', '__')}"
                (scan_root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, scan_root / rel)
                owner[rel] = name
        scan_root.mkdir(parents=True, exist_ok=True)
        shutil.copy(audit.DOCKERFILE, scan_root / "Dockerfile")
        owner["Dockerfile"] = "Dockerfile"
        baseline = audit.Baseline()
        have_checkov = audit.checkov_available()
        failures: list[audit.Failure] = []
        passed_by: dict[str, int] = {}
        if have_checkov:
            by_file: dict[str, int] = {}
            _, failures, _ = audit.run_checkov(scan_root, passed_by_file=by_file)
            for rel, n in by_file.items():
                passed_by[owner.get(rel, "?")] = passed_by.get(owner.get(rel, "?"), 0) + n

        from stacks import layout

        rows = []
        unaccepted = 0
        for name, (folder, plan) in [*folders.items(), ("Dockerfile", (audit.DOCKERFILE.parent, None))]:
            if name == "Dockerfile":
                manifests, pss, secrets = 1, 0, 0
            else:
                files = audit.manifest_files(folder)
                manifests = len(files)
                pss = sum(len(audit.pss_violations(pod)) for f in files for d in audit.documents(f)
                          for _, pod in audit.pod_templates(d))
                secrets = len(scan_tree(folder)[1])
            mine = [f for f in failures if owner.get(f.file) == name]
            new, old, _ = baseline.split(mine)
            iam = public = residency = "-"
            if plan is not None and layout.has_iac(plan):  # type: ignore[arg-type]
                res = audit.mock_run(plan)
                objs = [d for f in audit.manifest_files(folder) for d in audit.documents(f)]
                iam = str(len(audit.iam_wildcards(res)))
                public = str(len(audit.public_exposure(res, objs)))
                residency = str(len(audit.residency_violations(res, plan)))
                unaccepted += int(iam) + int(public) + int(residency)
            unaccepted += len(new) + pss + secrets
            ck = (f"{passed_by.get(name, 0)} / {len(new)} / {len(old)}" if have_checkov else "n/a")
            rows.append((name, str(manifests), ck, str(pss), str(secrets), iam, public, residency))
        _, _, stale = baseline.split(failures) if have_checkov else ([], [], [])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    head = ("plan", "manifests", "checkov pass/fail/baselined", "PSS violations", "secrets", "IAM * grants",
            "public", "outside residency")
    _print(head, rows, args.markdown)
    print()
    if not have_checkov:
        print(f"checkov: not installed at {audit.CHECKOV} (make test installs it); checkov columns skipped")
    else:
        print(f"checkov baseline: {len(baseline.entries)} accepted (check, kind) entries, {len(stale)} stale")
        for e in baseline.entries:
            print(f"  {e.check_id:<12} {e.kind:<11} {' '.join(e.justification.split())[:90]}")
    print(f"{len(folders)} plan folders + Dockerfile in {time.perf_counter() - t0:.1f} s; "
          f"{unaccepted} finding(s) not accepted")
    return 1 if unaccepted or stale else 0


def _print(head: tuple[str, ...], rows: list[tuple[str, ...]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    raise SystemExit(main())
