# Plain twin of fpn_sb-r26_1xb8-500it_demo-ade-96x96.py: the same thin
# ResNetV1c-26 with spatial bias switched off (plain bottlenecks) and the same
# recipe.
_base_ = './fpn_sb-r26_1xb8-500it_demo-ade-96x96.py'

model = dict(backbone=dict(sb_stages=(False, False, False, False)))
