import os
import sys

from .cli import main

rc = main()
if "WORLD_SIZE" in os.environ:  # started by torchrun: one of several processes leaves without teardown
    from .parallel import launched, leave  # local: torch; needed only under torchrun

    if launched():
        leave(rc)
sys.exit(rc)
