"""Fixtures of the demo tests."""
import pytest
from demo_utils import CONFIGS, explain, overrides, run, tool


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
