"""Third-party output goes to the log file; fasdistill's own lines reach the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

from fasdistill.utils.quiet import third_party_to_log


def test_c_level_python_level_warnings_and_logging_go_to_the_log(tmp_path, capfd):
    log = tmp_path / "out" / "third_party.log"
    with third_party_to_log(log) as say:
        os.write(1, b"pnnx: fd 1 line\n")
        os.write(2, b"oneDNN: fd 2 line\n")
        print("python stdout line")
        print("python stderr line", file=sys.stderr)
        warnings.warn("a converter's warning", UserWarning, stacklevel=1)
        logging.getLogger("absl").warning("absl line")
        say("ours: exported model.onnx")
    print("after the block")
    captured = capfd.readouterr()
    text = log.read_text()
    for line in (
        "pnnx: fd 1",
        "oneDNN: fd 2",
        "python stdout",
        "python stderr",
        "a converter's warning",
        "absl line",
    ):
        assert line in text
        assert line not in captured.out + captured.err
    assert "ours: exported model.onnx" in captured.out
    assert "ours:" not in text
    assert "after the block" in captured.out


def test_child_processes_inherit_the_log(tmp_path, capfd):
    log = tmp_path / "third_party.log"
    with third_party_to_log(log):
        subprocess.run([sys.executable, "-c", "print('child noise')"], check=True)
    assert "child noise" in log.read_text()
    assert "child noise" not in capfd.readouterr().out
