"""Hooks the demo tests add to configs through ``custom_imports``."""
import json
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class SIGKILLAfterIter(Hook):
    """Kill the own process with SIGKILL after training iteration ``at``
    (1-based), as an out-of-memory killer or a pre-empted node would; the
    CheckpointHook, of higher priority, has run by then."""

    priority = 'LOWEST'

    def __init__(self, at: int):
        self.at = at

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), signal.SIGKILL)


@HOOKS.register_module(force=True)
class RecordRankHook(Hook):
    """Each rank writes ``rank<r>.json`` into the work dir after training:
    its world size, backend, model wrapper and finished iterations, and with
    ``digest=True`` a SHA-256 of its model's parameters."""

    def __init__(self, digest: bool = False):
        self.digest = digest

    def after_train(self, runner):
        import hashlib

        import torch.distributed as dist
        from mmengine.dist import get_rank, get_world_size
        rank = get_rank()
        record = dict(
            rank=rank, world_size=get_world_size(),
            backend=dist.get_backend() if dist.is_initialized() else None,
            wrapper=type(runner.model).__name__, iters=runner.iter)
        if self.digest:
            h = hashlib.sha256()
            # parameters: DDP keeps them equal; BN running statistics are
            # each rank's own after its last forward
            for name, t in sorted(runner.model.named_parameters()):
                h.update(name.encode())
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
            record['digest'] = h.hexdigest()
        path = os.path.join(runner.work_dir, f'rank{rank}.json')
        with open(path, 'w') as f:
            json.dump(record, f)
