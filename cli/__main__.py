"""`python -m evtchn_spec.cli ...`: the console script `evtchn-spec`, run as a module."""

import sys

from . import main

sys.exit(main())
