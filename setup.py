"""Only the C extensions live here; everything else about the package is in pyproject.toml.

``imsconf.media._fastpath`` is the mixer's per-packet path: plain C against CPython's API with
no library of its own (libsrtp is reached through pylibsrtp's binding). It is optional: where it cannot
be compiled the mixer runs its Python path, which carries about half the load (docs/decisions/0004).

``imsconf.media._codecs`` binds Debian's codec libraries (opencore-amr, vo-amrwbenc, libopus, spandsp;
docs/decisions/0016-codecs.md). ``scripts/ensure-python.sh`` installs their -dev packages before the
build. It is optional too: without it only G.711 is offered.
"""

from setuptools import Extension, setup

CFLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "imsconf.media._fastpath",
            ["src/imsconf/media/_fastpath.c"],
            optional=True,
            extra_compile_args=CFLAGS,
        ),
        Extension(
            "imsconf.media._codecs",
            ["src/imsconf/media/_codecs.c"],
            optional=True,
            libraries=["opencore-amrwb", "opencore-amrnb", "vo-amrwbenc", "opus", "spandsp"],
            extra_compile_args=CFLAGS,
        ),
    ]
)
