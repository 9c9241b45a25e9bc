"""The native pieces: batched UDP I/O (runtime/_mmsg.c) and the echo relay (_mirror.c).

Everything else is in pyproject.toml. Both extensions are optional: where
one cannot be built (no C compiler; _mmsg off Linux) the install still
succeeds and the runtime keeps its Python path (runtime/mmsg.py and
runtime/native_mirror.py say which one runs).
"""

import sys

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]

ext_modules = [
    # The echo relay (runtime/native_mirror.py): POSIX recv/send only.
    Extension(
        "socketkit.runtime._mirror",
        ["src/socketkit/runtime/_mirror.c"],
        extra_compile_args=FLAGS,
        optional=True,
    )
]
if sys.platform.startswith("linux"):  # recvmmsg/sendmmsg are Linux's
    ext_modules.append(
        Extension(
            "socketkit.runtime._mmsg",
            ["src/socketkit/runtime/_mmsg.c"],
            extra_compile_args=FLAGS,
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
