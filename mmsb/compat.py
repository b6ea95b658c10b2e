# Copyright (c) mmsb contributors. All rights reserved.
"""Keeps the OpenMMLab stack (mmengine 0.10.x) working on the PyTorch range
mmsb supports (docs/install.md "Tested versions": torch 2.1 to 2.13).

``import mmsb`` (every mmsb config triggers it through ``custom_imports``)
does two things here, both registrations: it allowlists the globals of Runner
checkpoints (1) and registers a DDP wrapper (3). It starts nothing: the
process group of (2) is set up by tools/train.py and tools/test.py when they
run a multi-process job on a host without CUDA. None of this patches library
code. What the running torch offers is asked, never inferred from its version.

1. **Checkpoints where ``torch.load`` defaults to ``weights_only=True``**
   (torch >= 2.6). mmengine's Runner checkpoints hold a few non-tensor globals
   (mmengine's ``HistoryBuffer``, numpy arrays and scalars), so ``--resume``,
   ``mim test --checkpoint`` and ``load_checkpoint`` fail there. We allowlist
   exactly those globals with ``torch.serialization.add_safe_globals``. A
   ``HistoryBuffer`` pickles its statistics methods as
   ``builtins.getattr(HistoryBuffer, 'min')``; the name ``builtins.getattr`` is
   bound to :func:`history_buffer_getattr`, which resolves only those methods,
   so a ``getattr`` chain to ``os.system`` is still refused. Checkpoints stay
   loaded with ``weights_only=True``.
   Where torch has no allowlist (< 2.4) nothing is registered, and where its
   allowlist takes no ``(object, name)`` pairs only the globals pickled under
   their own names are (:func:`allowlisted_checkpoint_globals`). Either way
   such a torch loads with ``weights_only=False`` by default: unrestricted,
   so the allowlist has nothing to restrict and protects nothing there.
2. **Multi-process training on a CPU-only host.** mmengine's pytorch launcher
   calls ``torch.cuda.set_device`` and initialises the configured (NCCL)
   backend. :func:`init_cpu_distributed_from_env` initialises the process
   group of a torchrun-started process (``RANK``, ``LOCAL_RANK``,
   ``WORLD_SIZE`` and ``MASTER_ADDR`` set) without CUDA with gloo instead, so
   that the Runner finds it initialised and skips its launcher; our tools
   call it, and say so in their log. On a GPU host it does nothing.
3. **DDP on CPU modules.** The Runner passes ``device_ids=[LOCAL_RANK]`` to
   DDP, which DDP refuses for CPU modules. :class:`MMSBDistributedDataParallel`
   (registered in mmengine's MODEL_WRAPPERS, so every scope finds it) is
   mmengine's ``MMDistributedDataParallel`` that drops ``device_ids`` when the
   module lives on the CPU; tools/train.py and tools/test.py select it for
   such runs (``model_wrapper_cfg``).
"""
import contextlib
import io
import os
import warnings

import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.logging import HistoryBuffer
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

__all__ = [
    'CHECKPOINT_SAFE_GLOBALS', 'history_buffer_getattr', 'safe_globals_scope',
    'allowlist_takes_names', 'allowlisted_checkpoint_globals',
    'allow_runner_checkpoints', 'init_cpu_distributed_from_env',
    'MMSBDistributedDataParallel'
]


def history_buffer_getattr(obj, name):
    """``builtins.getattr`` as seen by checkpoint unpickling.

    Resolves only a statistics method of mmengine's ``HistoryBuffer`` (how
    pickle protocol 2 stores ``HistoryBuffer.min`` and friends); anything else
    is refused, so the name cannot reach e.g. ``os.system``.
    """
    allowed = set(HistoryBuffer._statistics_methods) | {
        'min', 'max', 'current', 'mean'
    }
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        value = getattr(HistoryBuffer, name)
        if callable(value):
            return value
    raise torch.serialization.pickle.UnpicklingError(
        f'mmsb: refusing builtins.getattr({obj!r}, {name!r}) in a checkpoint: '
        f'only HistoryBuffer statistics methods ({sorted(allowed)}) are '
        f'allowed')


def _numpy_globals():
    """(object, pickled name) for the numpy pieces in Runner checkpoints."""
    found = []
    try:  # numpy >= 2 pickles through numpy._core, older via numpy.core
        from numpy._core import multiarray as _ma2
        found += [(_ma2._reconstruct, 'numpy._core.multiarray._reconstruct'),
                  (_ma2.scalar, 'numpy._core.multiarray.scalar')]
    except ImportError:
        pass
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        from numpy.core import multiarray as _ma1
    found += [(_ma1._reconstruct, 'numpy.core.multiarray._reconstruct'),
              (_ma1.scalar, 'numpy.core.multiarray.scalar')]
    found += [(np.ndarray, 'numpy.ndarray'), (np.dtype, 'numpy.dtype')]
    # numpy >= 1.25 pickles a dtype instance through its class in numpy.dtypes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            cls = getattr(dtypes, name)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                found.append((cls, f'numpy.dtypes.{name}'))
    return found


CHECKPOINT_SAFE_GLOBALS = [
    (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
    (history_buffer_getattr, 'builtins.getattr'),
] + _numpy_globals()


@contextlib.contextmanager
def safe_globals_scope(globs):
    """Allowlist ``globs`` for ``weights_only`` loading inside the block.

    Uses torch's scoped ``safe_globals`` where it exists, else its
    process-wide list, restored afterwards. Yields False, allowing nothing,
    on a torch without an allowlist.
    """
    ser = torch.serialization
    if hasattr(ser, 'safe_globals'):  # scoped (torch >= 2.5)
        with ser.safe_globals(list(globs)):
            yield True
    elif hasattr(ser, 'add_safe_globals'):  # process-wide only (torch 2.4)
        before = list(ser.get_safe_globals())
        ser.add_safe_globals(list(globs))
        try:
            yield True
        finally:  # leave the list as it was
            ser.clear_safe_globals()
            ser.add_safe_globals(before)
    else:
        yield False


def _name_probe():
    """A global that only an allowlist entry given as a pair admits."""


def allowlist_takes_names() -> bool:
    """Whether this torch's allowlist takes ``(object, 'module.name')`` pairs.

    Asked without I/O: inside a scope that allowlists such a pair, the name
    must map to the object in
    ``torch._weights_only_unpickler._get_user_allowed_globals()``, which
    every weights-only load consults. The first torch releases with an
    allowlist read ``__module__``/``__name__`` of every entry there, so a
    pair registered would break every weights-only load that meets a
    non-default global. On a torch without that private function a
    weights-only load of an in-memory pickle answers instead.
    """
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return False  # torch < 2.4: no allowlist
    pair = (_name_probe, f'{__name__}._name_probe')
    try:
        from torch._weights_only_unpickler import \
            _get_user_allowed_globals as allowed_globals
    except ImportError:
        return _load_takes_names(pair)
    with safe_globals_scope([pair]):
        try:
            return allowed_globals().get(pair[1]) is _name_probe
        except Exception:  # AttributeError: 'tuple' object has no ...
            return False


def _load_takes_names(pair) -> bool:
    """Whether a weights-only load admits ``pair[0]`` allowlisted as
    ``pair``: a ``torch.save``/``torch.load`` round trip in memory."""
    buf = io.BytesIO()
    torch.save({'probe': pair[0]}, buf)
    with safe_globals_scope([pair]):
        try:
            buf.seek(0)
            return torch.load(buf, weights_only=True)['probe'] is pair[0]
        except Exception:  # AttributeError: 'tuple' object has no ...
            return False


def allowlisted_checkpoint_globals(takes_names: bool) -> list:
    """What :func:`allow_runner_checkpoints` registers.

    With pairs, all of :data:`CHECKPOINT_SAFE_GLOBALS`. Without, only the
    objects pickled under their own ``module.qualname``: ``builtins.getattr``
    (HistoryBuffer's statistics methods) is left out, so a weights-only load
    of a Runner checkpoint is refused there, as without mmsb. Such a torch
    loads unrestricted by default, which the Runner does.
    """
    if takes_names:
        return list(CHECKPOINT_SAFE_GLOBALS)
    return [
        obj for obj, name in CHECKPOINT_SAFE_GLOBALS
        if f'{getattr(obj, "__module__", "")}.'
        f'{getattr(obj, "__qualname__", "")}' == name
    ]


def allow_runner_checkpoints():
    """Allowlist the globals of mmengine Runner checkpoints for torch.load.

    Nothing to do on a torch without an allowlist, which loads unrestricted
    unless asked for ``weights_only=True``.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:
        add(allowlisted_checkpoint_globals(allowlist_takes_names()))


_TORCHRUN_VARS = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_ADDR')


def init_cpu_distributed_from_env() -> bool:
    """Initialise gloo for a torchrun-started process on a host without CUDA.

    Returns:
        bool: True if this call initialised the process group.
    """
    if not all(v in os.environ for v in _TORCHRUN_VARS):
        return False
    if torch.cuda.is_available() or not torch_dist.is_available() or \
            torch_dist.is_initialized():
        return False
    torch_dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']))
    return True


@MODEL_WRAPPERS.register_module(force=True)
class MMSBDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's ``MMDistributedDataParallel``, also for CPU modules.

    The Runner always passes ``device_ids=[LOCAL_RANK]``; DDP accepts that
    only for single-GPU modules. For a module whose parameters are on the CPU
    (gloo on a CPU host) ``device_ids``/``output_device`` are dropped, as DDP
    requires; on GPUs this class behaves exactly like its parent.
    """

    def __init__(self, module, device_ids=None, output_device=None, **kwargs):
        first = next(module.parameters(), None)
        if first is not None and first.device.type == 'cpu':
            device_ids, output_device = None, None
        super().__init__(
            module=module,
            device_ids=device_ids,
            output_device=output_device,
            **kwargs)


allow_runner_checkpoints()
