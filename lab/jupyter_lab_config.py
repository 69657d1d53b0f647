"""JupyterLab for the book's chapters: `make lab` starts it with this file.

(tests/chapters/test_lab.py starts the same configuration in a temporary folder.)  The
notebooks open from book/, the MyST renderer is jupyterlab-myst (the `lab` extra), and
nothing asks another machine for anything: no news, no update check, an extension manager
that does not query a package index.  The settings in overrides.json (next to this file)
keep the news toast away and turn autosave off: the chapters are the book's sources,
committed without outputs, so Lab writes a run into them only on File > Save.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)

HERE = Path(__file__).resolve().parent

c.ServerApp.root_dir = str(HERE.parent)
c.LabApp.default_url = "/lab/tree/book"
c.LabApp.app_settings_dir = str(HERE)  # overrides.json
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.extension_manager = "readonly"
# Jupyter refuses to run as root unless told to; containers and CI machines run as root.
c.ServerApp.allow_root = hasattr(os, "geteuid") and os.geteuid() == 0
