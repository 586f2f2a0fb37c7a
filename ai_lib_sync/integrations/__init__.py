"""Bridges to web frameworks and other tools. Each module imports its framework itself, only
when it is imported, and needs its extra (``pip install 'ai-lib-sync[django]'``, ``[flask]``)."""
