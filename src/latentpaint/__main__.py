import sys

from latentpaint.cli import main

sys.exit(main())
