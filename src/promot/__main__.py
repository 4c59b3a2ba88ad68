import sys

from promot.cli import main

sys.exit(main())
