import sys

from tokenpo.harness.cli import main

sys.exit(main())
