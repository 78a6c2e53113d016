"""`python -m vahini.serving [options]`: the read side's program, same as `vahini serve`."""

import sys

from vahini.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
