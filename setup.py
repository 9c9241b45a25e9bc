"""The one native piece: batched UDP I/O for the server (runtime/_mmsg.c).

Everything else is in pyproject.toml. The extension is optional: where it
cannot be built (no C compiler, not Linux) the install still succeeds and the
UDP adapter keeps its plain recvfrom_into/sendto path (runtime/mmsg.py says
which one runs).
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(
        Extension(
            "socketkit.runtime._mmsg",
            ["src/socketkit/runtime/_mmsg.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
