"""The toolboxes' own inference APIs on our configs and checkpoints.

A demo config is trained for two iterations with tools/train.py; then a
fresh Python process that never imports mmsb (the config's
``custom_imports`` is all it gets) runs mmdet's ``DetInferencer`` and
``init_detector``/``inference_detector``, mmseg's ``MMSegInferencer`` and
``init_model``/``inference_model``, or mmpretrain's
``ImageClassificationInferencer`` on one of the demo images, once as the
first thing the process does and once after another toolbox's default scope
was set (as in a script that ran another toolbox's model first).
"""
import glob
import json
import os.path as osp
import sys

import pytest
from utils import CONFIGS, REPO, explain, run

from mmsb.data.demo import CLASSES, SEG_CLASSES

pytestmark = pytest.mark.slow

IMAGES = {
    'det': 'data/coco/val2017/*.jpg',
    'seg': 'data/ade/images/validation/*.jpg',
    'cls': 'data/cls/val/*/*.png',
}

# Shared head of every inference script: argv, the optional foreign default
# scope, and a report of how mmsb got imported.
HEAD = '''
import json, sys
config, ckpt, img, scope = sys.argv[1:5]
if scope != 'none':
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
'''
TAIL = '''
mmsb = sys.modules.get('mmsb')
out['mmsb'] = getattr(mmsb, '__file__', None)
print()  # ends any progress bar's line
print('RESULT ' + json.dumps(out))
'''

SCRIPTS = {
    'det': '''
from mmdet.apis import DetInferencer, inference_detector, init_detector
assert 'mmsb' not in sys.modules
inferencer = DetInferencer(model=config, weights=ckpt, device='cpu')
pred = inferencer(img, show=False)['predictions'][0]
model = init_detector(config, ckpt, device='cpu')
sample = inference_detector(model, img)
out = dict(
    inferencer={k: pred[k] for k in ('labels', 'scores', 'bboxes')},
    api=dict(num=len(sample.pred_instances),
             bboxes=sample.pred_instances.bboxes.shape[-1],
             classes=list(model.dataset_meta['classes'])))
''',
    'seg': '''
import cv2
from mmseg.apis import MMSegInferencer, inference_model, init_model
assert 'mmsb' not in sys.modules
inferencer = MMSegInferencer(model=config, weights=ckpt, device='cpu')
pred = inferencer(img, show=False)['predictions']
model = init_model(config, ckpt, device='cpu')
sample = inference_model(model, img)
seg = sample.pred_sem_seg.data
out = dict(
    image=list(cv2.imread(img).shape[:2]),
    inferencer=dict(shape=list(pred.shape),
                    labels=sorted(int(v) for v in set(pred.ravel()))),
    api=dict(shape=list(seg.shape), labels=seg.unique().tolist(),
             classes=list(model.dataset_meta['classes'])))
''',
    'cls': '''
from mmengine.registry import DefaultScope
from mmpretrain import ImageClassificationInferencer
assert 'mmsb' not in sys.modules
out = {}
if scope != 'none':
    # mmpretrain builds the test pipeline in the caller's default scope
    # (mmpretrain #1839): without mmpretrain's scope it looks for
    # PackInputs in the other toolbox's registry.
    try:
        ImageClassificationInferencer(config, pretrained=ckpt, device='cpu')
    except KeyError as e:
        out['bug'] = str(e)
with DefaultScope.overwrite_default_scope('mmpretrain'):
    inferencer = ImageClassificationInferencer(
        config, pretrained=ckpt, device='cpu')
pred = inferencer(img)[0]
out['inferencer'] = dict(
    scores=pred['pred_scores'].tolist(), label=int(pred['pred_label']),
    score=float(pred['pred_score']), cls=pred['pred_class'])
''',
}


@pytest.fixture
def demo_checkpoint(demo_run):
    """(tmp dir with the tiny data, checkpoint) of the session's
    two-iteration demo run of a task (conftest.demo_run)."""
    def get(task):
        tmp, work, _ = demo_run(task)
        return tmp, work / 'iter_2.pth'

    return get


def infer(task, tmp, ckpt, scope):
    img = sorted(glob.glob(str(tmp / IMAGES[task])))[0]
    # cwd: an empty folder, so nothing can come from the checkout's data.
    cwd = tmp / f'infer-{scope}'
    cwd.mkdir()
    proc = run([sys.executable, '-c', HEAD + SCRIPTS[task] + TAIL,
                CONFIGS[task], str(ckpt), img, scope], cwd=cwd)
    assert proc.returncode == 0, explain(proc)
    [line] = [ln for ln in proc.stdout.splitlines()
              if ln.startswith('RESULT ')]
    out = json.loads(line[len('RESULT '):])
    # custom_imports imported mmsb, from this checkout
    assert out['mmsb'] == osp.join(REPO, 'mmsb', '__init__.py')
    assert list(cwd.iterdir()) == []  # inference wrote nothing
    return out


@pytest.mark.parametrize('scope', ['none', 'mmseg'])
def test_det_inferencer_and_api(demo_checkpoint, scope):
    tmp, ckpt = demo_checkpoint('det')
    out = infer('det', tmp, ckpt, scope)
    pred = out['inferencer']
    assert len(pred['labels']) == len(pred['scores']) == \
        len(pred['bboxes']) > 0
    assert all(len(b) == 4 for b in pred['bboxes'])
    assert set(pred['labels']) <= set(range(len(CLASSES)))
    assert all(0 <= s <= 1 for s in pred['scores'])
    assert out['api']['num'] > 0 and out['api']['bboxes'] == 4
    assert tuple(out['api']['classes']) == CLASSES  # from the checkpoint


@pytest.mark.parametrize('scope', ['none', 'mmdet'])
def test_seg_inferencer_and_api(demo_checkpoint, scope):
    tmp, ckpt = demo_checkpoint('seg')
    out = infer('seg', tmp, ckpt, scope)
    h, w = out['image']
    assert out['inferencer']['shape'] == [h, w]
    assert out['api']['shape'] == [1, h, w]
    for labels in (out['inferencer']['labels'], out['api']['labels']):
        assert labels and set(labels) <= set(range(len(SEG_CLASSES)))
    assert tuple(out['api']['classes']) == SEG_CLASSES


@pytest.mark.parametrize('scope', ['none', 'mmdet'])
def test_cls_inferencer(demo_checkpoint, scope):
    tmp, ckpt = demo_checkpoint('cls')
    out = infer('cls', tmp, ckpt, scope)
    pred = out['inferencer']
    assert len(pred['scores']) == len(CLASSES)
    assert sum(pred['scores']) == pytest.approx(1, abs=1e-4)
    assert pred['cls'] == CLASSES[pred['label']]
    assert pred['score'] == pytest.approx(max(pred['scores']))
    if scope != 'none':
        # The toolbox bug the docs/inference.md snippet works around. When
        # this fails, mmpretrain builds its pipeline in its own scope: drop
        # the DefaultScope.overwrite_default_scope line from
        # docs/inference.md and the workaround from docs/custom_configs.md.
        assert "PackInputs is not in the mmdet::transform registry" in \
            out['bug']
    else:
        assert 'bug' not in out


def _doc_snippets():
    import re
    with open(osp.join(REPO, 'docs', 'inference.md'), encoding='utf-8') as f:
        text = f.read()
    return dict(re.findall(
        r'<!-- inference: (\w+) -->\n```python\n(.*?)```', text, re.S))


def test_inference_doc_snippets_run(demo_checkpoint, tmp_path):
    """docs/inference.md's snippets, one after another in one fresh
    process, pointed at the two-iteration checkpoints and the tiny data."""
    import re
    snippets = _doc_snippets()
    assert sorted(snippets) == ['cls', 'det', 'seg']
    code = []
    for task in ('det', 'seg', 'cls'):
        tmp, ckpt = demo_checkpoint(task)
        snippet = snippets[task]
        snippet = re.sub(r"'work_dirs/[^']+\.pth'", repr(str(ckpt)), snippet)
        snippet = snippet.replace("'configs/", repr(REPO + '/')[:-1] +
                                  "configs/")
        [image] = re.findall(r"inferencer\('(data/demo/[^']+)'\)", snippet)
        tiny = str(tmp / 'data' / image[len('data/demo/'):])
        assert osp.isfile(tiny), tiny
        code.append(snippet.replace(repr(image), repr(tiny)))
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    proc = run([sys.executable, '-c', '\n'.join(code)], cwd=cwd)
    assert proc.returncode == 0, explain(proc)
    assert list(cwd.iterdir()) == []
