"""Third-party log output (mediapipe, TF-Lite, absl, glog, warp, diffusers, transformers) kept off the user's
terminal unless ``--debug``: it is not ours, says nothing a user can act on, and breaks the live progress display.

Two layers, both set up by :func:`silence_third_party` before any heavy import: environment variables and Python
loggers for the libraries that honour them, and for native code that writes straight to file descriptor 2 (TF-Lite's
"Created TensorFlow Lite XNNPACK delegate", glog's ``W0000 ...`` lines), fd 2 itself is pointed at a scratch file
while Python's ``sys.stderr`` (our messages, the progress display, tracebacks) keeps writing to the real stderr.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile

#: Set (unless already set by the user) before the libraries are imported.
QUIET_ENV = {
    "GLOG_minloglevel": "3",  # glog (mediapipe's C++ graph): fatal messages only
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow / TF-Lite C++ logging
    "ABSL_MIN_LOG_LEVEL": "3",
    "DIFFUSERS_VERBOSITY": "critical",
    "TRANSFORMERS_VERBOSITY": "critical",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # tqdm bars would interleave with our progress display
}
#: Python loggers of third-party libraries, silenced entirely.
QUIET_LOGGERS = ("absl", "mediapipe", "tensorflow", "jax", "diffusers", "transformers", "huggingface_hub", "warp",
                 "py.warnings", "PIL", "trimesh", "open3d", "onnxruntime", "rembg", "matplotlib", "urllib3")


def silence_third_party(debug: bool) -> None:
    """Keep third-party output off the terminal for the rest of this process (nothing changes with ``debug``)."""
    if debug:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    logging.captureWarnings(True)  # a library's warnings.warn goes to the silenced "py.warnings" logger
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.CRITICAL + 1)
        logger.propagate = False
    redirect_native_stderr()


def redirect_native_stderr() -> None:
    """Point fd 2 at a scratch file and give Python a ``sys.stderr`` on a duplicate of the original fd 2."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        sink = tempfile.TemporaryFile(prefix="human3d-native-stderr-")
        os.dup2(sink.fileno(), 2)
        sink.close()  # fd 2 keeps the (already unlinked) file open
    except (OSError, AttributeError, ValueError):  # no real fd 2 (embedded interpreter): nothing to redirect
        return
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = io.TextIOWrapper(os.fdopen(saved, "wb", buffering=0), encoding=encoding,
                                  errors="backslashreplace", line_buffering=True, write_through=True)
