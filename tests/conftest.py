import os

import pytest
import torch

# Two cores: keep torch from oversubscribing them while tests run in turn.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

import mmsb  # noqa: E402,F401  registers models, activates compat


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
