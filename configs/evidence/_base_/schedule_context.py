# recipe: to be fixed on the plain model on the local control
_base_ = 'mmseg::_base_/schedules/schedule_20k.py'

max_iters = 600
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
optimizer = dict(_delete_=True, type='AdamW', lr=0.004, weight_decay=0.05)
optim_wrapper = dict(optimizer=optimizer)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=30),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=30, end=max_iters,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
