# 2400 iterations with AdamW, validated every 600, for the Pathfinder
# classifiers. Chosen on pilots of the plain model only, before any SB run
# (docs/evidence.md, "Recipe").
max_iters = 2400
train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=600)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=0.002, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=100),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=100, end=max_iters,
         eta_min=1e-5)
]
