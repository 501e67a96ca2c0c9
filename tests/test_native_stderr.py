import os
import sys

from quantviz.native_stderr import capture_native_stderr


def test_both_fd2_and_python_stderr_are_captured():
    log: list[str] = []
    with capture_native_stderr(log):
        os.write(2, b"native line\n")
        print("python line", file=sys.stderr)
    assert log == ["native line", "python line"]
