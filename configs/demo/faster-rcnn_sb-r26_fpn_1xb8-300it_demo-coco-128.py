# Faster R-CNN + FPN with a thin SB-ResNet-26 on the embedded shapes set:
# its plain twin with spatial bias in stages 1-3 (3 bias maps pooled to 4x4,
# as the stage maps are 32..8 px here). Everything else is the plain twin's.
_base_ = './faster-rcnn_r26_fpn_1xb8-300it_demo-coco-128.py'

model = dict(backbone=dict(sb_stages=(True, True, True, False)))
