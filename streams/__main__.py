"""`python -m vahini.streams [options]`: the write side's program, same as `vahini ingest features`."""

import sys

from vahini.cli import main

sys.exit(main(["ingest", "features", *sys.argv[1:]]))
