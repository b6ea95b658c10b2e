"""Installing mmsb into an environment that already has a stack never
replaces it, and `python mmsb/check.py` says what is outside the supported
ranges (requirements/supported.txt), which the docs state once.

An "environment" here is a folder of package metadata (``*.dist-info``) put
first on the path: what pip and importlib.metadata read to know what is
installed. Nothing is downloaded (pip runs with --no-index)."""
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys

import pytest
from utils import REPO

CHECK = osp.join(REPO, 'mmsb', 'check.py')
IN_RANGE = dict(torch='2.13.0', mmcv='2.1.0', mmengine='0.10.7',
                mmdet='3.3.0')


def _site(tmp_path, versions, ops=True):
    """A folder where these distributions look installed."""
    site = tmp_path / 'site'
    for name, version in versions.items():
        info = site / f'{name}-{version}.dist-info'
        info.mkdir(parents=True)
        (info / 'METADATA').write_text(
            f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        files = [f'{name}/__init__.py']
        if name == 'mmcv' and ops:
            files.append('mmcv/_ext.cpython-311-x86_64-linux-gnu.so')
        (info / 'RECORD').write_text(''.join(f'{f},,\n' for f in files))
    return site


def _env(site):
    return dict(os.environ, PYTHONPATH=str(site), PIP_NO_INDEX='1',
                PIP_DISABLE_PIP_VERSION_CHECK='1')


def _check(site):
    return subprocess.run([sys.executable, CHECK], env=_env(site),
                          capture_output=True, text=True, timeout=60)


def test_check_passes_in_range_and_names_what_is_not(tmp_path):
    ok = _check(_site(tmp_path / 'a', IN_RANGE))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert 'within the supported ranges' in ok.stdout
    old = _check(_site(tmp_path / 'b', dict(IN_RANGE, torch='2.0.1',
                                             mmdet='3.2.0')))
    assert old.returncode == 1
    assert 'error: torch 2.0.1 is outside the supported range: mmsb needs ' \
        'torch>=2.1.0,<2.14' in old.stderr
    assert 'error: mmdet 3.2.0 is outside' in old.stderr
    new = _check(_site(tmp_path / 'c', dict(IN_RANGE, torch='2.14.0')))
    assert new.returncode == 1 and 'torch 2.14.0 is outside' in new.stderr
    lite = _check(_site(tmp_path / 'd', IN_RANGE, ops=False))
    assert lite.returncode == 1
    assert 'mmcv 2.1.0 has no compiled ops' in lite.stderr
    # an optional toolbox out of range warns, and is not an error
    seg = _check(_site(tmp_path / 'e', dict(IN_RANGE,
                                            mmsegmentation='1.1.0')))
    assert seg.returncode == 0
    assert 'warning: mmsegmentation 1.1.0 is outside' in seg.stderr


def _source_copy(tmp_path):
    """The checkout's sources, without environments, data or outputs:
    building mmsb's metadata writes mmsb/.mim, which must not happen in
    the checkout under test."""
    skip = shutil.ignore_patterns('.venv*', '.git', 'work_dirs', 'data',
                                  '.mim', '*.egg-info', '__pycache__',
                                  '.pytest_cache', 'build', 'dist')
    src = tmp_path / 'src'
    shutil.copytree(REPO, src, ignore=skip, symlinks=True)
    return src


def _dry_run(site, *what, report, cwd=REPO):
    return subprocess.run(
        [sys.executable, '-m', 'pip', 'install', '--dry-run',
         '--no-build-isolation', '--report', str(report), *what],
        env=_env(site), cwd=str(cwd), capture_output=True, text=True,
        timeout=300)


@pytest.mark.slow
def test_documented_install_keeps_an_out_of_range_stack(tmp_path):
    """With torch 2.0.1 and mmcv 2.0.0 installed (outside the range), the
    documented `pip install -e .` would install mmsb alone, and the check
    then names both. Control: asking pip for torch in mmsb's range in the
    same environment would replace that torch (pip would install one from
    its find-links, or, finding none without an index, fails looking for
    one), so the environment is seen as it is meant to be."""
    site = _site(tmp_path, dict(IN_RANGE, torch='2.0.1', mmcv='2.0.0'))
    report = tmp_path / 'report.json'
    res = _dry_run(site, '-e', '.', report=report,
                   cwd=_source_copy(tmp_path))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    installs = [i['metadata']['name'] for i in
                json.loads(report.read_text())['install']]
    assert installs == ['mmsb'], installs
    check = _check(site)
    assert check.returncode == 1
    assert re.search(r'error: torch 2\.0\.1 is outside', check.stderr)
    assert re.search(r'error: mmcv 2\.0\.0 is outside', check.stderr)

    from_setup = subprocess.run(
        [sys.executable, '-c', 'import runpy, sys; sys.argv = ["setup.py"];'
         ' g = runpy.run_path("setup.py", run_name="x");'
         ' print(g["supported"]("torch"))'],
        cwd=REPO, capture_output=True, text=True)
    torch_range = from_setup.stdout.strip()
    assert torch_range == 'torch>=2.1.0,<2.14', from_setup.stderr
    # --no-deps: the question is torch itself; its own requirements (torch
    # 2.13 needs setuptools>=77.0.3, which an oldest-row environment lacks
    # and --no-index cannot fetch) would fail the control for another reason
    control = _dry_run(site, '--no-deps', torch_range,
                       report=tmp_path / 'c.json')
    if control.returncode == 0:  # pip's find-links hold a torch wheel
        installs = [i['metadata']['name'] for i in json.loads(
            (tmp_path / 'c.json').read_text())['install']]
        assert 'torch' in installs, control.stdout[-2000:]
    else:
        assert 'No matching distribution found for torch' in \
            control.stderr, control.stderr[-2000:]


def test_docs_state_the_supported_ranges():
    """docs/install.md's range table is requirements/supported.txt."""
    sys.path.insert(0, REPO)
    try:
        from mmsb.check import supported_ranges
    finally:
        sys.path.remove(REPO)
    with open(osp.join(REPO, 'docs', 'install.md'), encoding='utf-8') as f:
        text = f.read()
    rows = dict(re.findall(r'^\| `?([\w-]+)`? \| `([^`]+)` \|', text, re.M))
    for r in supported_ranges():
        assert rows.get(r['name']) == r['range'], (r['name'], rows)
