#!/usr/bin/env bash
# Does the BlazeFace detector run on other CPython versions, with and without ONNX Runtime?
# It needs only OpenCV and NumPy (ONNX Runtime when installed), not torch, so it is run
# from the source tree in a bare venv per interpreter. Usage:
#   bash tools/blazeface_pythons.sh PHOTO.png /path/to/python3.10 /path/to/python3.13 ...
# Prints, per interpreter and runtime, the box and score of the best face in PHOTO.
set -euo pipefail
photo=$1; shift
src=$(cd "$(dirname "$0")/../src" && pwd)
for py in "$@"; do
  venv=$(mktemp -d)
  "$py" -m venv "$venv"
  "$venv/bin/pip" install -q "opencv-python-headless<5" numpy onnxruntime
  for ort in yes no; do
    PYTHONPATH=$src "$venv/bin/python" - "$ort" "$photo" <<'PY'
import sys
if sys.argv[1] == "no":
    sys.modules["onnxruntime"] = None  # `import onnxruntime` fails: OpenCV runs the model
import cv2
from fasdistill.data.detect import get_detector
detector = get_detector("blazeface")
found = detector.best(cv2.imread(sys.argv[2]))
print(sys.version.split()[0], detector.model.runtime, cv2.__version__,
      [round(v, 1) for v in found.box], round(found.score, 3))
PY
  done
  rm -rf "$venv"
done
