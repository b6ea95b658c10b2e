# Plain network (configs/evidence/_base_/context.py) on the context data set
# with rule 'local' (mmsb.data.context): each disc's class is its own colour (yellow a, cyan b); the red or
# blue keys say nothing. The control: local evidence suffices, and every model
# should solve it, at any distance from the keys.
# Its twins fcn_{sb,nl,gc}-r20-cifar_1xb8-600it_context-local-112.py change
# only the backbone.
_base_ = ['./_base_/context.py', './_base_/schedule_context.py']

data_root = 'data/demo/context-local/'
demo_cfg = dict(rule='local')
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
