"""``python -m ai_lib_sync ...``: the CLI, reachable even where console scripts are not on PATH."""

import sys

from .cli import main

sys.exit(main())
