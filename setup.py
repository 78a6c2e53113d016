"""The one compiled module, vahini.codecs._loops: the read path's per-value loops.
It is optional: where no C compiler is found the install still succeeds, and
vahini.codecs.loops falls back to the same loops in Python."""

from Cython.Build import cythonize
from setuptools import Extension, setup

setup(ext_modules=cythonize(
    [Extension("vahini.codecs._loops", ["vahini/codecs/_loops.pyx"], optional=True)],
    compiler_directives={"language_level": 3}))
