import sys

from tokenpo.harness.entry import main

sys.exit(main())
