# Non-local: its plain twin with mmcv's NonLocal2d (embedded Gaussian, Wang et
# al. 2018) after conv2 of both bottlenecks of stage 3, at stride 4 (28x28
# positions at 112 px, the resolution of res3 in an ImageNet ResNet-50). Not
# in stages 1-2 where spatial bias sits: there one step costs 19x the plain
# network's (stages 1-2: 11.9 s against 0.49 s at 96 px, batch 8, one core)
# or, in stage 2 alone, 7x (4.4 s against 0.61 s at 112 px), beyond this
# budget; and mmcv 2.1's sub_sample=True, which would halve it, fails in
# init_weights (it looks for .conv inside the pooled Sequential). Here one
# step costs about 1.15x the plain network's.
_base_ = './fcn_r20-cifar_1xb8-600it_context-global-112.py'

model = dict(
    backbone=dict(plugins=[
        dict(
            cfg=dict(
                type='NonLocal2d',
                reduction=2,
                use_scale=True,
                mode='embedded_gaussian'),
            stages=(False, False, True),
            position='after_conv2')
    ]))
