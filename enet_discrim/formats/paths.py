"""Paths read from dataset files, resolved inside the dataset root they belong to."""

import os


def resolve_inside(root, folder, path, what):
    """Resolves `path` (read from a file in `folder`) and checks that it lies inside `root`.

    Only path arithmetic and symlink resolution happen here; no file is opened.

    Args:
        root: the dataset root.
        folder: the folder `path` is relative to.
        path: the path as the file gives it (may be absolute, contain "..", or hit a symlink).
        what: what the path is, for the message (e.g. "raw_file", "frame").

    Returns:
        (resolved absolute path, path relative to the resolved root, "/"-separated).

    Raises:
        ValueError: the path contains a NUL byte or resolves outside `root`.
    """
    if "\0" in path:
        raise ValueError(f"{what} {path!r} contains a NUL byte")
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(os.path.join(folder, path))
    if os.path.commonpath([real_root, resolved]) != real_root:
        raise ValueError(f"{what} {path!r} resolves outside the dataset root, refused")
    return resolved, os.path.relpath(resolved, real_root).replace(os.sep, "/")
