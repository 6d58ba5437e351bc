"""Atomic file writes: a temporary file in the target's folder, then `os.replace`.

A reader (or a run killed half-way through a write) sees either the old file or the new one,
never a half-written one; the rename stays on one file system because the temporary file sits
beside its target.
"""

import json
import os
import tempfile

#: Prefix of the temporary files, so that a folder's leftovers can be recognised.
TEMP_PREFIX = ".tmp-"


def write_bytes(path, content, temp_prefix=TEMP_PREFIX):
    """Writes `content` (bytes) to `path` atomically, readable by all (0o644)."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temp_path = tempfile.mkstemp(prefix=temp_prefix, dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
        os.chmod(temp_path, 0o644)  # mkstemp creates files private to the owner
        os.replace(temp_path, path)
    except BaseException:
        if os.path.exists(temp_path):
            os.remove(temp_path)
        raise


def write_text(path, text, temp_prefix=TEMP_PREFIX):
    """Writes `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"), temp_prefix)


def write_json(path, values, temp_prefix=TEMP_PREFIX):
    """Writes `values` as indented, key-sorted JSON (and a newline) to `path` atomically."""
    write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n", temp_prefix)
