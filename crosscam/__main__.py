"""``python -m crosscam ...``: the same as the ``crosscam`` command."""

import sys

from crosscam.cli import main

sys.exit(main())
