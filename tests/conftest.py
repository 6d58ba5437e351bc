import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


import contextlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Holds a folder with `atomic.folder_lock` until its stdin closes; says "held" once it does.
_HOLDER = """
import sys
from enet_discrim import atomic
with atomic.folder_lock(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def held_by_another_process():
    """Returns a context manager: `with held(folder, command): ...` runs its block while another
    process (its PID the block's value) holds `folder` as `command` would."""
    @contextlib.contextmanager
    def held(folder, command="train"):
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder), command],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": _REPO})
        try:
            assert holder.stdout.readline() == "held\n"
            yield holder.pid
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
    return held
