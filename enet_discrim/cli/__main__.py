"""`python -m enet_discrim.cli` is `enet-discrim`."""
import sys

from enet_discrim.cli import main

sys.exit(main())
