"""Leave exactly one working OpenCV build in the environment.

ultralytics and trackeval depend on ``opencv-python``; other packages (albumentations via smp, sam2's
extras) may bring ``opencv-python-headless``. Both install into the same ``cv2`` folder, so removing one
can break the other. We keep ``opencv-python`` (what the libraries ask for, so ``pip check`` stays clean)
and reinstall it if a headless copy was present.
"""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys


def installed(name: str) -> bool:
    try:
        md.version(name)
    except md.PackageNotFoundError:
        return False
    return True


def main() -> int:
    pip = [sys.executable, "-m", "pip"]
    others = [n for n in ("opencv-python-headless", "opencv-contrib-python", "opencv-contrib-python-headless")
              if installed(n)]
    if others:
        version = md.version("opencv-python")
        subprocess.check_call([*pip, "uninstall", "-y", "-q", *others])
        subprocess.check_call([*pip, "install", "-q", "--force-reinstall", "--no-deps", f"opencv-python=={version}"])
    out = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.__version__)"], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        sys.stderr.write(f"cv2 does not import after install:\n{out.stderr}\n")
        return 1
    print(f"cv2 {out.stdout.strip()} OK (opencv-python)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
