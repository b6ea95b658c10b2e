# Plain network (configs/evidence/_base_/context.py) on the context data set
# with rule 'global' (mmsb.data.context): the discs all look alike; their class is the colour of the two keys
# (both red: a, both blue: b). Beyond the receptive field only context can
# bring it; where the key is does not matter.
# Its twins fcn_{sb,nl,gc}-r20-cifar_1xb8-600it_context-global-112.py change
# only the backbone.
_base_ = ['./_base_/context.py', './_base_/schedule_context.py']

data_root = 'data/demo/context-global/'
demo_cfg = dict(rule='global')
train_dataloader = dict(
    dataset=dict(data_root=data_root, demo_cfg=demo_cfg))
val_dataloader = dict(dataset=dict(data_root=data_root, demo_cfg=demo_cfg))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='IoUMetric', iou_metrics=['mIoU']),
    dict(type='ContextObjectAccuracy', field={{_base_.field}},
         meta_file=data_root + 'meta-val.json'),
]
test_evaluator = val_evaluator
