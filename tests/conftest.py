import os

import pytest
import torch

# Two cores: keep torch from oversubscribing them while tests run in turn.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

import mmsb  # noqa: E402,F401  registers models, activates compat
from utils import CONFIGS, explain, overrides, run, tool  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory):
    """``demo_run(task)``: a two-iteration run of the task's demo config
    with tools/train.py on tiny data generated on first use, made once for
    the whole session and shared by every test that needs a trained demo
    model. Returns ``(tmp, work_dir, proc)``: the folder holding the data
    (``tmp/data/...``) and the work dir (``iter_2.pth``), and the finished
    process. Tests must not write into either: copy them first."""
    runs = {}

    def get(task):
        if task not in runs:
            tmp = tmp_path_factory.mktemp(f'{task}-run')
            work = tmp / 'work'
            proc = run(tool('train.py') + [
                CONFIGS[task], '--work-dir', str(work), '--cfg-options',
                *overrides(task, tmp, max_iters=2, ckpt_interval=2)
            ], cwd=tmp)
            assert proc.returncode == 0, explain(proc)
            runs[task] = tmp, work, proc
        return runs[task]

    return get
