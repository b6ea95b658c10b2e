# Copyright (c) mmsb contributors. All rights reserved.
"""Models from configs, outside a Runner: for tools and user code that
need the model a config describes without training or testing it."""
import copy
from typing import Optional

import torch


def runner_model_cfg(cfg):
    """``cfg.model`` as mmengine's Runner builds it: a copy, with the
    config's top-level ``data_preprocessor`` (where mmpretrain configs keep
    it) merged in unless the model has its own."""
    model = copy.deepcopy(cfg.model)
    pre = cfg.get('data_preprocessor')
    if isinstance(model, dict) and pre is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(pre))
    return model


def load_model(cfg,
               checkpoint: Optional[str] = None,
               strict: bool = True) -> torch.nn.Module:
    """Build the model of ``cfg`` in its scope and load ``checkpoint``.

    The backbone's ``init_cfg`` is dropped, so no pretrained weights are
    downloaded. Class names the Runner saved in the checkpoint become the
    model's ``dataset_meta``.

    Args:
        cfg (Config): The config; see :func:`runner_model_cfg`.
        checkpoint (str, optional): Weights to load (default: none, the
            model keeps its random init).
        strict (bool): Whether the checkpoint must match the model's keys.

    Returns:
        torch.nn.Module: The model, in eval mode, on the CPU.
    """
    from mmengine.registry import MODELS, init_default_scope
    from mmengine.runner import load_checkpoint

    init_default_scope(cfg.get('default_scope', 'mmengine'))
    model_cfg = runner_model_cfg(cfg)
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone'].pop('init_cfg', None)
    model = MODELS.build(model_cfg)
    if checkpoint:
        ckpt = load_checkpoint(model, checkpoint, map_location='cpu',
                               strict=strict)
        meta = (ckpt.get('meta') or {}).get('dataset_meta')
        if meta:
            model.dataset_meta = meta
    return model.eval()
