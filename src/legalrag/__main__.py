import sys

from legalrag.cli import main

sys.exit(main())
