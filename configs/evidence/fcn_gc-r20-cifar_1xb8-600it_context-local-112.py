# GCNet: its plain twin with mmcv's ContextBlock (Cao et al. 2019) in every
# bottleneck of stages 1 and 2, where spatial bias sits, placed as mmdet's
# GCNet configs place it (after conv3, ratio 1/4). Its context is one vector
# per image, added at every position.
_base_ = './fcn_r20-cifar_1xb8-600it_context-local-112.py'

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(type='ContextBlock', ratio=1. / 4),
            stages=(True, True, False),
            position='after_conv3')
    ]))
