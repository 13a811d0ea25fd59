"""``python -m trainers MODEL ...`` (what torchrun runs) is the same as ``inpaint-studio-train``."""

from .cli import main

raise SystemExit(main())
