r"""Result caches of grids of runs, keyed by run mode and by the code that produced them.

A sweep (:func:`reluflow.runs.sweep.run`) writes one file per configuration, named by its
hash, and skips configurations already on disk.  The results also depend on the code, so
:func:`cache_dir` puts every grid in a folder named after :func:`source_fingerprint`: the
hash of every source file of the package (all subpackages) and of the numpy and scipy
versions.  Any change to the engine, the analysis or the run set-up, or a different
numerical library, starts from an empty cache; FAST and full runs live in different
folders.  Deleting the folder only costs the time to recompute.

Examples
--------
>>> len(source_fingerprint())
12
>>> cache_dir("_build/cache", "kappa", fast=True).parts[-3]
'fast'
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import scipy

__all__ = ["cache_dir", "source_fingerprint"]

#: The installed package: every ``*.py`` below it is part of the fingerprint.
PACKAGE = Path(__file__).resolve().parents[1]


def source_fingerprint(package_dir: str | os.PathLike[str] | None = None) -> str:
    """First 12 hex digits of the SHA-256 of the package's sources and numerical libraries.

    Hashes, in sorted order, the relative path and the bytes of every ``*.py`` file under
    ``package_dir`` (recursively; default: the installed :mod:`reluflow`), then the
    numpy and scipy versions.  Cached results are only valid for the code that produced
    them: a cache folder named after this fingerprint is never read by other code.
    """
    root = PACKAGE if package_dir is None else Path(package_dir)
    if not root.is_dir():
        raise ValueError(f"package_dir must be an existing directory, got {str(root)!r}")
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        h.update(path.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(path.read_bytes())
        h.update(b"\0")
    h.update(f"numpy {np.__version__}; scipy {scipy.__version__}".encode())
    return h.hexdigest()[:12]


def cache_dir(root: str | os.PathLike[str], name: str, fast: bool) -> Path:
    """Folder of one grid: ``root/<fast|full>/<source_fingerprint()>/<name>``.

    Parameters
    ----------
    root : path
        Cache root (created when the grid runs, not here).
    name : str
        Name of the grid: letters, digits, ``_`` and ``-``.
    fast : bool
        Reduced-size grids go to ``fast``, full ones to ``full``: they never mix.
    """
    if not (isinstance(name, str) and name and all(c.isalnum() or c in "_-" for c in name)):
        raise ValueError(f"name must be a non-empty string of letters, digits, '_' or '-', "
                         f"got {name!r}")
    if not isinstance(fast, bool | np.bool_):
        raise ValueError(f"fast must be a boolean (True or False), got {fast!r}")
    return Path(root) / ("fast" if fast else "full") / source_fingerprint() / name
