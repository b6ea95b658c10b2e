# Copyright (c) mmsb contributors. All rights reserved.
"""The IDX format of (Fashion-)MNIST, written: tiny stand-ins for the real
files, read by mmpretrain's own ``FashionMNIST`` with ``download=False``
(the evidence tool's ``--quick`` mode and the tests use them; the real data
come from ``make data-fashion``)."""
import os
import os.path as osp
import struct

import numpy as np

FILES = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
         't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')


def idx_bytes(array: np.ndarray) -> bytes:
    """``array`` (1-D labels or N x H x W images) as an IDX file of uint8:
    magic 0x0000_08_<ndim>, each dimension as a big-endian uint32, the
    data."""
    array = np.asarray(array)
    if array.ndim not in (1, 3):
        raise ValueError(f'idx_bytes: expected labels (N,) or images '
                         f'(N, H, W), got shape {array.shape}')
    header = struct.pack('>I', 0x0800 + array.ndim)
    header += struct.pack(f'>{array.ndim}I', *array.shape)
    return header + array.astype(np.uint8).tobytes()


def tiny_fashion_mnist(num_train: int = 8, num_test: int = 4,
                       seed: int = 0) -> dict:
    """``{file name: IDX bytes}`` of a tiny Fashion-MNIST: random 28 x 28
    images (pixels 1-255, so that padding, flips and the wrong split show)
    and labels that run through the 10 classes (train from 0, test from
    3)."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n, first in (('train', num_train, 0), ('t10k', num_test, 3)):
        images = rng.integers(1, 256, size=(n, 28, 28), dtype=np.uint8)
        out[f'{split}-images-idx3-ubyte'] = idx_bytes(images)
        out[f'{split}-labels-idx1-ubyte'] = idx_bytes(
            (first + np.arange(n)) % 10)
    return out


def write_tiny_fashion_mnist(root: str, **kwargs) -> str:
    """Write :func:`tiny_fashion_mnist` into ``root`` (created). Refuses to
    replace a file larger than 1 MiB: a tiny set never goes over the real
    one."""
    os.makedirs(root, exist_ok=True)
    for name, data in tiny_fashion_mnist(**kwargs).items():
        path = osp.join(root, name)
        if osp.isfile(path) and osp.getsize(path) > 1 << 20:
            raise FileExistsError(
                f'{path} holds {osp.getsize(path)} bytes, more than a tiny '
                f'set: refusing to write over what looks like the real '
                f'Fashion-MNIST')
        with open(path, 'wb') as f:
            f.write(data)
    return root
