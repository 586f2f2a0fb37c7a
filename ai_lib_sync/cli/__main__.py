"""``python -m ai_lib_sync.cli``: the same as ``ai-lib-sync``."""

import sys

from . import main

sys.exit(main())
