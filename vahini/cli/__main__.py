import sys

from vahini.cli import main

sys.exit(main())
