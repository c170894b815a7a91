import sys

from tinyvision.cli import main

sys.exit(main())
