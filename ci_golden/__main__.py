from __future__ import annotations

import sys

from ci_golden.cli import main

sys.exit(main())
