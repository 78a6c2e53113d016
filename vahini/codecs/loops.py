"""The compiled read-path loops (vahini.codecs._loops), or None where they were not
built: pip builds them from _loops.pyx when a C compiler is at hand, and every
caller keeps the Python loop they stand in for. tests/codecs/test_loops.py checks
that both give the same results, and that CI runs the compiled ones."""

try:
    from vahini.codecs import _loops as compiled
except ImportError:  # installed without a C compiler: the Python loops serve alone
    compiled = None
