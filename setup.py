"""The one compiled module, vahini.codecs._loops: the hot paths' per-value loops.
It is optional: where no C compiler is found the install still succeeds (with a
warning), and vahini.codecs.loops falls back to the same loops in Python."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = cythonize([Extension("vahini.codecs._loops", ["vahini/codecs/_loops.pyx"])],
                       compiler_directives={"language_level": 3})
for extension in extensions:
    extension.optional = True  # cythonize builds new Extension objects without it
setup(ext_modules=extensions)
