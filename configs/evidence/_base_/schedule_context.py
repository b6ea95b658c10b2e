# recipe: AdamW lr 4e-3, weight decay 0.05, linear warm-up over 30
# iterations, then cosine to 1e-5; 600 iterations of 8 images (2.4 epochs of
# the 2000 training images), horizontal and vertical flips. Why: the optimizer
# is the demo segmentors' (configs/demo, chosen there before any of these
# models existed); the length is what the slowest model's run fits in about
# 15 minutes on one core (plain 0.62 s/iter alone, non-local about 1.15x),
# with 600 iterations at least twice what the local control needs. Fixed on
# the plain model on the local control, before any comparison run (pilot,
# seed 100, not an evidence seed; docs/evidence/pilots/context-recipe/): object
# accuracy 100% beyond and within the field at 150, 300, 450 and 600
# iterations, mIoU 94.2 -> 95.8, training loss 0.006, 0.62 s/iter, 7.0
# minutes. Not to be changed after any comparison run.
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
