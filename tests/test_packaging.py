"""The wheel ships configs, tools and model-index.yml under mmsb/.mim (where
mim looks), and setup.py's extras name each downstream."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def git_files(*patterns):
    """The files git tracks under ROOT; skips the test where ROOT is not
    a git checkout (an sdist, a copied tree) or git is missing."""
    try:
        res = subprocess.run(['git', 'ls-files', '--', *patterns], cwd=ROOT,
                             capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip('git is not installed')
    # outside a checkout git fails (exit 128): with check=True that was an
    # error, never the skip
    if res.returncode != 0 or not res.stdout.split():
        pytest.skip(f'{ROOT} is not a git checkout')
    return res.stdout.split()


@pytest.mark.slow
def test_wheel_ships_mim_files(tmp_path):
    files = git_files()
    src = tmp_path / 'src'
    for f in files:
        if osp.isfile(osp.join(ROOT, f)):
            dst = src / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(osp.join(ROOT, f), dst)
    res = subprocess.run(
        [sys.executable, '-m', 'pip', 'wheel', '--no-deps',
         '--no-build-isolation', '-q', '-w', str(tmp_path / 'dist'),
         str(src)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    wheel = next((tmp_path / 'dist').glob('mmsb-*.whl'))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert 'mmsb/.mim/tools/train.py' in names
    assert 'mmsb/.mim/tools/dist_train.sh' in names
    assert 'mmsb/.mim/model-index.yml' in names
    shipped = {n for n in names if n.startswith('mmsb/.mim/configs/')}
    expected = {'mmsb/.mim/' + f for f in files
                if f.startswith('configs/') and f.endswith('.py')}
    assert expected and expected <= shipped
    assert 'mmsb/compat.py' in names and 'mmsb/registry.py' in names


@pytest.mark.slow
def test_extras_per_downstream():
    out = subprocess.run([sys.executable, 'setup.py', '-q', '--name'],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1] == 'mmsb'
    sys.path.insert(0, ROOT)
    try:
        scope = {'__name__': 'not_main',
                 '__file__': osp.join(ROOT, 'setup.py')}
        with open(osp.join(ROOT, 'setup.py')) as f:
            exec(compile(f.read(), 'setup.py', 'exec'), scope)
        supported = scope['supported']
        runtime = scope['parse_requirements']('runtime.txt')
    finally:
        sys.path.remove(ROOT)
    # the extras take their ranges from requirements/supported.txt
    assert supported('mmdet') == 'mmdet>=3.3.0,<3.4.0'
    assert supported('mmsegmentation') == 'mmsegmentation>=1.2.0,<1.3.0'
    assert supported('mmpretrain') == 'mmpretrain>=1.2.0,<1.3.0'
    with pytest.raises(KeyError, match='no line for timm'):
        supported('timm')
    # and a plain install asks for nothing of the stack
    stack = ('torch', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation',
             'mmpretrain')
    assert not [r for r in runtime if r.startswith(stack)]


def _site_with_this_checkout(tmp_path):
    """A site dir holding an ``mmsb`` distribution whose ``.mim`` is this
    checkout's: mim reads ``<dist location>/mmsb/.mim/model-index.yml``, so
    without it `mim search` would read whichever mmsb is installed."""
    site = tmp_path / 'site'
    mim = site / 'mmsb' / '.mim'
    mim.mkdir(parents=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        os.symlink(osp.join(ROOT, name), mim / name)
    meta = site / 'mmsb-0.0.0.dist-info'
    meta.mkdir()
    (meta / 'METADATA').write_text(
        'Metadata-Version: 2.1\nName: mmsb\nVersion: 0.0.0\n')
    return site


@pytest.mark.slow
def test_mim_search_lists_the_models(tmp_path):
    mim = osp.join(osp.dirname(sys.executable), 'mim')
    env = dict(os.environ, PYTHONPATH=str(_site_with_this_checkout(tmp_path)))
    res = subprocess.run([mim, 'search', 'mmsb'], capture_output=True,
                         text=True, cwd='/', env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    for config_id in ('faster-rcnn_sb-r50_fpn_2xb8-1x_coco',
                      'cascade-rcnn_sb-r50_fpn_2xb8-1x_coco',
                      'fpn_sb-r50_2xb14-40k_ade20k-512x512',
                      'sb-resnet50_8xb32-90e_in1k',
                      # beyond the paper
                      'mask-rcnn_sb-r50_fpn_1x_coco',
                      'upernet_sb-r50_4xb4-160k_ade20k-512x512',
                      'faster-rcnn_sb-r50_fpn_amp-1x_coco'):
        assert f'config id: {config_id}' in res.stdout
    assert res.stdout.count('no weights trained yet') == 3


def test_sources_parse_as_the_oldest_declared_python():
    """setup.py declares python_requires='>=3.8' (torch 2.1's oldest Python)
    while only 3.11 is tested: at least the syntax must hold there. (ast's
    feature_version checks grammar only, not library calls.)"""
    import ast
    files = git_files('*.py')
    for f in files:
        with open(osp.join(ROOT, f), encoding='utf-8') as fh:
            ast.parse(fh.read(), f, feature_version=(3, 8))
