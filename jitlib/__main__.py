"""``python -m jitlib`` is the ``jitlib`` command."""

import sys

from jitlib.cli import main

sys.exit(main())
