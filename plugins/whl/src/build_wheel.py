"""Builds one wheel for Loktar's `whl` builder.

Usage: build_wheel.py SOURCE OUT LOCAL_LABEL

The package folder SOURCE is copied to a scratch folder, so the build never
writes into the work tree, and built offline by pip with the build backend
installed on this machine. With a LOCAL_LABEL (branch builds) the wheel's
version gets it as a PEP 440 local version (`1.2.0+feature.x.1a2b3c4d`), so a
branch build never has a release's version. The wheel goes into OUT; the
last line printed is JSON: file, name, version, sha256.
"""

import base64
import hashlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

IGNORED = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".git", ".loktar")


def main():
    source, out, label = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory(prefix="loktar-whl-") as scratch:
        scratch = pathlib.Path(scratch)
        copy = scratch / "src"
        shutil.copytree(source, copy, ignore=IGNORED)
        dist = scratch / "dist"
        pip = [sys.executable, "-m", "pip", "wheel", str(copy), "--no-deps", "--no-build-isolation",
               "--no-index", "--no-cache-dir", "--disable-pip-version-check", "--wheel-dir", str(dist)]
        built = subprocess.run(pip, stdout=sys.stderr)
        if built.returncode != 0:
            sys.exit(built.returncode)
        wheels = sorted(dist.glob("*.whl"))
        if len(wheels) != 1:
            print(f"expected one wheel, pip made {len(wheels)}", file=sys.stderr)
            sys.exit(3)
        wheel = relabel(wheels[0], label, scratch) if label else wheels[0]
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, out / wheel.name)
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        print(json.dumps({"file": wheel.name, "name": name, "version": version, "sha256": digest}))


def relabel(wheel, label, scratch):
    """A copy of `wheel` whose version carries the local label `label`."""
    name, version, rest = wheel.name.split("-", 2)
    new_version = f"{version}.{label}" if "+" in version else f"{version}+{label}"
    old_info, new_info = f"{name}-{version}.dist-info/", f"{name}-{new_version}.dist-info/"
    target = scratch / f"{name}-{new_version}-{rest}"
    record = []
    with zipfile.ZipFile(wheel) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for entry in old.infolist():
            path = entry.filename.replace(old_info, new_info, 1) if entry.filename.startswith(old_info) else entry.filename
            if path == new_info + "RECORD":
                continue
            data = old.read(entry)
            if path == new_info + "METADATA":
                lines = data.decode("utf-8").split("\n")
                lines = [f"Version: {new_version}" if line.startswith("Version: ") else line for line in lines]
                data = "\n".join(lines).encode("utf-8")
            info = zipfile.ZipInfo(path, date_time=entry.date_time)
            info.external_attr = entry.external_attr
            info.compress_type = zipfile.ZIP_DEFLATED
            new.writestr(info, data)
            hashed = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={hashed},{len(data)}")
        record.append(f"{new_info}RECORD,,")
        new.writestr(new_info + "RECORD", "\n".join(record) + "\n")
    return target


main()
