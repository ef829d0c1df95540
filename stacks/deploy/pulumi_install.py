"""Download the Pulumi CLI at a pinned version and verify its SHA-256 before unpacking (stdlib only).

Used by the Dockerfile's build stage (``python pulumi_install.py --version V --dest /opt/pulumi``) and usable on a
CI runner. The tarball's digest must equal the one in the release's own ``pulumi-<V>-checksums.txt``; when a
digest is pinned as well (``--sha256``, the Dockerfile's ``PULUMI_SHA256`` build argument), it must equal that
too, so a changed upload cannot slip in. Release layout:
https://github.com/pulumi/pulumi/releases/download/v<V>/pulumi-v<V>-linux-x64.tar.gz (+ the checksums file).
The tarball holds ``pulumi/<binaries>``; they are unpacked into ``<dest>/bin``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path

RELEASES = "https://github.com/pulumi/pulumi/releases/download"


class VerifyError(Exception):
    pass


def _fetch(url: str, timeout: float = 120.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: bytes = resp.read()
    return data


def expected_digest(checksums: str, filename: str) -> str | None:
    """The digest of ``filename`` in a ``sha256sum``-style listing (``<hex>  <name>`` per line)."""
    for line in checksums.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == filename:
            return parts[0].lower()
    return None


def install(version: str, dest: str | Path, *, sha256: str | None = None, base_url: str = RELEASES,
            arch: str = "x64") -> Path:
    """Download, verify and unpack; return ``dest/bin/pulumi``. Raises VerifyError on any mismatch."""
    version = version.removeprefix("v")
    tar_name = f"pulumi-v{version}-linux-{arch}.tar.gz"
    data = _fetch(f"{base_url}/v{version}/{tar_name}")
    listing = _fetch(f"{base_url}/v{version}/pulumi-{version}-checksums.txt").decode("utf-8", "replace")
    actual = hashlib.sha256(data).hexdigest()
    published = expected_digest(listing, tar_name)
    if published is None:
        raise VerifyError(f"{tar_name} is not listed in pulumi-{version}-checksums.txt")
    if actual != published:
        raise VerifyError(f"{tar_name}: sha256 {actual} != published {published}")
    if sha256 and actual != sha256.lower():
        raise VerifyError(f"{tar_name}: sha256 {actual} != pinned {sha256.lower()}")
    bindir = Path(dest) / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix("./")
            if not member.isfile() or not name.startswith("pulumi/") or "/" in name[len("pulumi/"):] \
                    or ".." in name:
                continue
            src = tar.extractfile(member)
            if src is None:
                continue
            target = bindir / Path(name).name
            target.write_bytes(src.read())
            target.chmod(0o755)
    exe = bindir / "pulumi"
    if not exe.is_file():
        raise VerifyError(f"{tar_name} holds no pulumi/pulumi binary")
    return exe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--version", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--sha256", default="", help="pinned digest of the tarball (optional, recommended)")
    ap.add_argument("--base-url", default=RELEASES)
    args = ap.parse_args(argv)
    try:
        exe = install(args.version, args.dest, sha256=args.sha256 or None, base_url=args.base_url)
    except (VerifyError, OSError) as e:
        print(f"pulumi_install: {e}", file=sys.stderr)
        return 1
    print(f"pulumi {args.version} verified and installed at {exe}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
