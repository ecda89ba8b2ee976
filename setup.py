"""Only the C extension lives here; everything else about the package is in pyproject.toml.

``imsconf.media._fastpath`` is the mixer's per-packet path: plain C against CPython's API with
no library of its own (libsrtp is reached through pylibsrtp's binding). It is optional: where it cannot
be compiled the mixer runs its Python path, which carries about half the load (docs/decisions/0004).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "imsconf.media._fastpath",
            ["src/imsconf/media/_fastpath.c"],
            optional=True,
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
            ],
        )
    ]
)
