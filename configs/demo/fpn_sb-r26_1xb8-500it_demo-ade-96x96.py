# Semantic FPN with a thin SB-ResNetV1c-26 on the embedded shapes set: its
# plain twin with spatial bias in stages 1-3 (3 bias maps pooled to 4x4, as
# the stage maps are 24..6 px here). Everything else is the plain twin's.
_base_ = './fpn_r26_1xb8-500it_demo-ade-96x96.py'

model = dict(backbone=dict(sb_stages=(True, True, True, False)))
