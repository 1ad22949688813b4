"""The aioqueue command."""

import sys
from pathlib import Path

# the 'aioqueue' command the package installs, beside this Python (the virtual environment's bin/):
# what users run, so the tests run it too
SCRIPT = Path(sys.executable).with_name("aioqueue.exe" if sys.platform == "win32" else "aioqueue")
