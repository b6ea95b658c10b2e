# Plain twin of faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py: the same
# thin ResNet-26 (mmdet's ResNet has no depth 26, so it is SBResNet with
# spatial bias switched off: plain bottlenecks) and the same recipe.
_base_ = './faster-rcnn_sb-r26_fpn_1xb8-300it_demo-coco-128.py'

model = dict(backbone=dict(sb_stages=(False, False, False, False)))
