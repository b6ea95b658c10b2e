"""tools/analysis/visualize_bias.py, as a user runs it: one PNG of the bias
maps, never overwritten."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from utils import REPO, env

# the tool imports this checkout's mmsb, not an installed copy
ENV = env()


@pytest.mark.slow
def test_tool_writes_png_and_refuses_overwrite(tmp_path):
    cfg = tmp_path / 'cls.py'
    cfg.write_text(
        "custom_imports = dict(imports=['mmsb'], allow_failed_imports=False)\n"
        "default_scope = 'mmpretrain'\n"
        "model = dict(type='ImageClassifier', backbone=dict(type='SBResNet',"
        " depth=26, base_channels=16), neck=dict(type='GlobalAveragePooling'),"
        " head=dict(type='LinearClsHead', num_classes=2, in_channels=512),"
        " data_preprocessor=dict(mean=[123.7, 116.3, 103.5],"
        " std=[58.4, 57.1, 57.4]))\n")
    img = tmp_path / 'img.jpg'
    Image.fromarray((np.random.default_rng(1).random((80, 100, 3)) *
                     255).astype(np.uint8)).save(img)
    out = tmp_path / 'maps.png'
    cmd = [sys.executable, 'tools/analysis/visualize_bias.py', str(cfg),
           str(img), '--out', str(out), '--size', '128']
    # the script's path is relative to the repository, whatever pytest's cwd
    res = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert 'wrote' in res.stdout and out.stat().st_size > 1000
    again = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True,
                           text=True)
    assert again.returncode != 0 and 'exists' in again.stderr
