# Plain network (configs/evidence/_base_/context.py) on the context data set
# with rule 'spatial' (mmsb.data.context): the discs all look alike; each one's class is the colour of the key
# nearer to it (one key red, one blue), so two discs of one image can differ.
# Beyond the receptive field this needs context and where it comes from: a
# context vector added equally at every position cannot give it.
# Its twins fcn_{sb,nl,gc}-r20-cifar_1xb8-600it_context-spatial-112.py change
# only the backbone.
_base_ = ['./_base_/context.py', './_base_/schedule_context.py']

data_root = 'data/demo/context-spatial/'
demo_cfg = dict(rule='spatial')
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
