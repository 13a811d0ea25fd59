"""``python -m inpaint_studio`` is the same as the ``inpaint-studio`` command."""

import sys

from .cli import main

sys.exit(main())
