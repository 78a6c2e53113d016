"""The compiled modules: vahini.codecs._loops, the read path's per-value loops;
vahini.codecs._interaction_reader, the interaction worker's decode;
vahini.adapters._cql_rows, a feature row's CQL encoding; and vahini.streams._window_loops,
the window step's per-event loops. All are optional: where no C compiler is found the
install still succeeds (with a warning), and the modules that use them fall back to
their Python code, which stays the reference the tests compare with."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = cythonize([Extension("vahini.codecs._loops", ["vahini/codecs/_loops.pyx"]),
                        Extension("vahini.codecs._interaction_reader", ["vahini/codecs/_interaction_reader.pyx"]),
                        Extension("vahini.adapters._cql_rows", ["vahini/adapters/_cql_rows.pyx"]),
                        Extension("vahini.streams._window_loops", ["streams/_window_loops.pyx"])],
                       compiler_directives={"language_level": 3})
for extension in extensions:
    extension.optional = True  # cythonize builds new Extension objects without it
setup(ext_modules=extensions)
