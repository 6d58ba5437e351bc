"""Atomic writes: a temporary file (or folder) beside the target, then a rename.

A reader (or a run killed half-way through a write) sees either the old file or the new one,
never a half-written one; the rename stays on one file system because the temporary sits beside
its target.

Temporaries are named `PREFIX<pid>-...` (`process_prefix`), so that `remove_leftovers` can tell
those of a killed run (its process is gone) from those of a run still writing.
"""

import contextlib
import json
import os
import re
import shutil
import tempfile

#: Prefix of the temporary files, so that a folder's leftovers can be recognised.
TEMP_PREFIX = ".tmp-"
#: Suffix of an earlier folder moved aside by `write_folder` while the new one moves in.
_ASIDE_SUFFIX = "-old"


def temporary_path(path, suffix="", temp_prefix=TEMP_PREFIX):
    """A new empty file beside `path`, named with this process's prefix (so that `leftovers`
    recognises it once the process is gone) and `suffix` (e.g. ".keras", which Keras insists on).
    Fill it, then `replace` it onto `path`, or remove it."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        handle, temp_path = tempfile.mkstemp(prefix=process_prefix(temp_prefix), suffix=suffix,
                                             dir=folder)
    except OSError as error:  # named after the file being written, not the temporary's name
        raise _naming(error, path) from error
    os.close(handle)
    return temp_path


def replace(temp_path, path):
    """Moves the finished `temp_path` onto `path` in one step, readable by all (0o644)."""
    os.chmod(temp_path, 0o644)  # mkstemp creates files private to the owner
    os.replace(temp_path, path)


@contextlib.contextmanager
def replacing(path, suffix="", temp_prefix=TEMP_PREFIX):
    """Yields a temporary path to write `path`'s new content to; it replaces `path` when the block
    ends normally and is removed when it raises, leaving any earlier `path` as it was."""
    temp_path = temporary_path(path, suffix, temp_prefix)
    try:
        yield temp_path
        replace(temp_path, path)
    except OSError as error:
        _raise_naming(error, path)
    finally:
        if os.path.exists(temp_path):
            os.remove(temp_path)


def _naming(error, path):
    """The OSError `error` as one of its type naming `path`."""
    return type(error)(error.errno, error.strerror, path)


def _raise_naming(error, path):
    """Raises `error`, as the same OSError naming `path` when it names no file: a write that
    fails on a full disk raises one without a file name."""
    if error.filename is not None or not error.errno:
        raise error
    raise _naming(error, path) from error


def write_bytes(path, content, temp_prefix=TEMP_PREFIX):
    """Writes `content` (bytes) to `path` atomically, readable by all (0o644)."""
    with replacing(path, temp_prefix=temp_prefix) as temp_path:
        with open(temp_path, "wb") as stream:
            stream.write(content)


def write_text(path, text, temp_prefix=TEMP_PREFIX):
    """Writes `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"), temp_prefix)


def write_json(path, values, temp_prefix=TEMP_PREFIX):
    """Writes `values` as indented, key-sorted JSON (and a newline) to `path` atomically."""
    write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n", temp_prefix)


def check_folder_target(path, name="--outdir"):
    """Raises ValueError (one line, naming `name` and `path`) when `path` or one of its parents
    exists and is not a folder, so that a command fails before it does any work."""
    probe = os.path.abspath(path)
    while True:
        if os.path.lexists(probe):
            if not os.path.isdir(probe):
                which = "" if probe == os.path.abspath(path) else f" ({probe} is a file)"
                raise ValueError(f"{name} {path} exists and is not a folder{which}")
            return
        parent = os.path.dirname(probe)
        if parent == probe:
            return
        probe = parent


def process_prefix(temp_prefix):
    """`temp_prefix` tagged with this process's id, e.g. ".tmp-convert-4242-"."""
    return f"{temp_prefix}{os.getpid()}-"


def _is_running(pid):
    if os.name != "posix":  # no harmless probe elsewhere (os.kill would signal): assume alive
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OverflowError:
        return False
    return True


def leftovers(folder, temp_prefix):
    """The temporaries `temp_prefix*` in `folder` that no running process owns.

    A name `PREFIX<pid>-...` belongs to process `pid` and is a leftover once that process is gone
    (this process's own count as running); a name without a process id comes from a version that
    did not tag them, hence from a finished run.

    Returns:
        sorted list of paths.
    """
    if not os.path.isdir(folder):
        return []
    tagged = re.compile(re.escape(temp_prefix) + r"(\d+)-")
    found = []
    for name in sorted(os.listdir(folder)):
        if not name.startswith(temp_prefix):
            continue
        match = tagged.match(name)
        if match is None or not _is_running(int(match[1])):
            found.append(os.path.join(folder, name))
    return found


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def remove_leftovers(folder, temp_prefix):
    """Deletes the `leftovers` of killed runs in `folder`; returns their paths."""
    found = leftovers(folder, temp_prefix)
    for path in found:
        _remove(path)
    return found


def _link_or_copy(source, destination):
    try:
        os.link(source, destination)
    except OSError:  # a file system without hard links
        shutil.copy2(source, destination)


def _carry_over(old_folder, new_folder):
    """Hard-links (or copies) the entries of `old_folder` that `new_folder` lacks into it."""
    present = set(os.listdir(new_folder))
    for name in sorted(os.listdir(old_folder)):
        if name in present:
            continue
        source, destination = os.path.join(old_folder, name), os.path.join(new_folder, name)
        if os.path.islink(source):
            os.symlink(os.readlink(source), destination)
        elif os.path.isdir(source):
            shutil.copytree(source, destination, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(source, destination)


def write_folder(path, write, temp_prefix=TEMP_PREFIX):
    """Writes a folder atomically: `write(folder)` fills a new folder beside `path`, which then
    takes the place of `path`.

    Entries of an earlier `path` that the new folder lacks (say a `model.tflite` beside a
    SavedModel) are carried over as hard links (copies where the file system has none). The swap
    is two renames, the earlier folder aside and the new one in, then the earlier one is deleted.
    A run killed at any point leaves at `path` the complete earlier folder or the complete new one,
    except between the two renames, when the earlier one waits beside it as
    `.NAME<temp_prefix><pid>-...-old`: the next `write_folder` to `path` first puts it back. Other
    leftovers of killed runs are deleted then too.

    A `path` that is a link to a folder is written through: the folder it leads to is
    replaced and the link stays. A mount point cannot be renamed, so it is refused.

    Args:
        path: the folder to (re)write.
        write: function(folder) that writes the new content into the empty `folder`.
        temp_prefix: marks the temporaries beside `path`, after ".NAME".

    Returns:
        `path`.

    Raises:
        ValueError: `path` exists and is not a folder, or is a mount point.
        OSError: a write that failed (naming `path` when the error named no file).
    """
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError(f"{path} exists and is not a folder")
    given = path
    if os.path.islink(path):
        path = os.path.realpath(path)
    if os.path.ismount(path):
        raise ValueError(f"{given} is a mount point, which cannot be replaced as a whole: "
                         "write into a folder inside it")
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    prefix = f".{name}{temp_prefix}"
    for leftover in leftovers(parent, prefix):
        if leftover.endswith(_ASIDE_SUFFIX) and not os.path.lexists(path):
            os.rename(leftover, path)  # killed between the two renames: the earlier folder
        else:
            _remove(leftover)
    try:
        temporary = tempfile.mkdtemp(prefix=process_prefix(prefix), dir=parent)
    except OSError as error:
        raise _naming(error, given) from error
    aside = temporary + _ASIDE_SUFFIX
    try:
        os.chmod(temporary, 0o755)  # mkdtemp creates folders private to the owner
        write(temporary)
        if os.path.isdir(path):
            _carry_over(path, temporary)
            os.rename(path, aside)
        os.rename(temporary, path)
    except BaseException as error:
        if not os.path.lexists(path) and os.path.isdir(aside):
            os.rename(aside, path)
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(error, OSError):
            _raise_naming(error, given)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return given


#: The lock file a command keeps in the folder it writes (`folder_lock`).
LOCK_FILE = ".enet-discrim.lock"
_held_locks = {}  # folder (real path) -> how many times this process holds it


class FolderInUseError(ValueError):
    """The folder is being written by another running command (`folder_lock`)."""


def _process_start(pid):
    """When process `pid` started (clock ticks since boot, /proc/PID/stat), or None where unknown:
    with the id it tells a process from a later one that was given the same id."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rpartition(")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _lock_owner(lock_path):
    """The running owner of the lock at `lock_path` as a dict, or None when the lock is stale
    (its process is gone, or the lock cannot be read: a run killed while writing it)."""
    try:
        with open(lock_path) as stream:
            owner = json.load(stream)
        pid = owner["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(pid, int) or isinstance(pid, bool):
        return None
    if owner.get("host") not in (None, os.uname().nodename):
        return owner  # another machine's process (a shared file system): cannot be probed
    if not _is_running(pid):
        return None
    started = owner.get("started")
    if started is not None and _process_start(pid) not in (None, started):
        return None  # the id now belongs to a later process
    return owner


@contextlib.contextmanager
def folder_lock(folder, command, name="--outdir"):
    """Holds `folder` for this process while the block runs: a second command that writes there
    at the same time is refused instead of interleaving its files with this one's.

    The lock is `folder/LOCK_FILE`, JSON with the owner's `pid`, `host`, start time and
    `command`, created exclusively and complete (`_create_exclusively`). A lock whose process is
    gone (a killed run) is taken over. The folder is created if needed (with its parents) and
    removed again at the end if the block left it empty. The same process may hold a folder more
    than once (nested calls).

    Args:
        folder: the folder the command writes.
        command: what holds it, for the message a second command gets (e.g. "train").
        name: how the user named the folder (the flag), for that message.

    Raises:
        FolderInUseError: a running process holds `folder`; the message names it, its command and
            its PID.
        ValueError: `folder` or a parent of it is a file (`check_folder_target`).
    """
    check_folder_target(folder, name)
    created = _missing_folders(folder)
    os.makedirs(folder, exist_ok=True)
    key = os.path.realpath(folder)
    lock_path = os.path.join(folder, LOCK_FILE)
    if _held_locks.get(key):
        _held_locks[key] += 1
        try:
            yield
        finally:
            _held_locks[key] -= 1
        return
    owner = {"pid": os.getpid(), "host": os.uname().nodename,
             "started": _process_start(os.getpid()), "command": command}
    while True:
        try:
            _create_exclusively(lock_path, json.dumps(owner))
        except FileExistsError:
            holder = _lock_owner(lock_path)
            if holder is not None:
                _remove_if_empty(created)
                raise FolderInUseError(
                    f"{name} {folder} is in use by {holder.get('command', 'a command')} (PID "
                    f"{holder['pid']} on {holder.get('host', 'this machine')}): wait for it to "
                    f"end or choose another folder (remove {lock_path} if no such run is "
                    "going)") from None
            # Stale: moved aside under a name of our own, so that of two runs taking it over at
            # once only one succeeds; the other finds this run's lock on its next try.
            aside = f"{lock_path}{TEMP_PREFIX}{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(lock_path, aside)
                if _lock_owner(aside) is not None:  # another run's fresh lock: give it back
                    with contextlib.suppress(FileExistsError):
                        os.link(aside, lock_path)
                os.remove(aside)
            continue
        break
    _held_locks[key] = 1
    try:
        yield
    finally:
        del _held_locks[key]
        with contextlib.suppress(FileNotFoundError):
            os.remove(lock_path)
        _remove_if_empty(created)


def _create_exclusively(path, text):
    """Creates the file `path` holding `text`, complete from its first moment (a reader never
    sees it empty: it is written beside it and hard-linked in); FileExistsError when it exists."""
    temp_path = temporary_path(path)
    try:
        with open(temp_path, "w") as stream:
            stream.write(text)
        os.chmod(temp_path, 0o644)
        try:
            os.link(temp_path, path)
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: created empty, then filled
            with open(path, "x") as stream:
                stream.write(text)
    finally:
        os.remove(temp_path)


def _missing_folders(folder):
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    path = os.path.abspath(folder)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _remove_if_empty(folders):
    """Removes `folders` (deepest first) while they are empty."""
    for folder in folders:
        try:
            os.rmdir(folder)
        except OSError:
            return
