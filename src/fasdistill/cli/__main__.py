"""``python -m fasdistill.cli``: what torchrun launches (``-m fasdistill.cli train ...``)."""

import sys

from fasdistill.cli import main

sys.exit(main())
