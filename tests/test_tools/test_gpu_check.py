"""tools/gpu_check.sh: its steps, order and limits live in one table
(STEP_TABLE), which the dry run, the rehearsal and the device run follow;
the header documents every step; the rehearsal runs the check in its
rehearsal mode. (The rehearsal itself, `make gpu-rehearsal`, builds a
Python 3.12 environment: too heavy for the suite.)"""
import os.path as osp
import re
import subprocess

import pytest
from utils import REPO

CHECK = osp.join(REPO, 'tools', 'gpu_check.sh')


def _table():
    with open(CHECK) as f:
        text = f.read()
    body = re.search(r"^STEP_TABLE='\n(.*?)^'", text, re.S | re.M).group(1)
    return [tuple(line.split()) for line in body.splitlines() if line.strip()]


def _dry(*args):
    proc = subprocess.run(['bash', CHECK, '--dry-run', *args],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return re.findall(r'^--- (\S+) \(limit (\d+) s\)$', proc.stdout, re.M)


def test_the_table_orders_the_steps():
    table = _table()
    names = [s for s, _, _ in table]
    assert len(set(names)) == len(names)
    assert {how for _, _, how in table} == {'fg', 'build', 'ops'}
    # the benchmarks come first, on a machine that builds nothing yet
    assert names.index('bench-amp') < names.index('mmcv-build') < \
        names.index('pytest-lite')
    # the ops steps come last, after the build
    ops = [s for s, _, how in table if how == 'ops']
    assert names[-len(ops):] == ops


@pytest.mark.parametrize('mode', [(), ('--cpu-smoke', ), ('--rehearsal', )])
def test_the_dry_run_follows_the_table(mode, tmp_path):
    table = _table()
    # a wheelhouse without a prebuilt mmcv (not the one a developer may have)
    shown = _dry(*mode, '--wheelhouse', str(tmp_path))
    expected = [(s, lim) for s, lim, how in table if how != 'build']
    assert [(s, lim) for s, lim in shown if s != 'mmcv-build'] == expected
    if not mode:  # the device run builds mmcv between the benchmarks and the tests
        names = [s for s, _ in shown]
        assert names.index('mmcv-build') == \
            [s for s, _, _ in table].index('mmcv-build')


def test_a_carried_mmcv_wheel_replaces_the_build(tmp_path):
    """With tools/gpu_mmcv_wheel.sh's wheel in the wheelhouse, the device
    run builds nothing and installs that wheel."""
    (tmp_path / 'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl').write_bytes(b'')
    proc = subprocess.run(['bash', CHECK, '--dry-run', '--wheelhouse',
                           str(tmp_path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    steps = re.findall(r'^--- (\S+) \(limit', proc.stdout, re.M)
    assert 'mmcv-build' not in steps and 'mmcv-install' in steps
    assert ('--- mmcv-build: nothing to build, the wheelhouse carries '
            'mmcv-2.1.0-cp312-cp312-linux_x86_64.whl') in proc.stdout


def test_the_header_documents_every_step_and_the_rehearsal_uses_it():
    with open(CHECK) as f:
        header = f.read().split('set -uo pipefail')[0]
    for step, _, _ in _table():
        assert re.search(rf'^#   {re.escape(step)}\s', header, re.M), step
    with open(osp.join(REPO, 'tools', 'gpu_rehearsal.sh')) as f:
        assert 'tools/gpu_check.sh --rehearsal' in f.read()
    with open(osp.join(REPO, 'Makefile')) as f:
        assert re.search(r'^gpu-rehearsal:', f.read(), re.M)


def test_unknown_steps_are_refused_naming_the_steps():
    proc = subprocess.run(['bash', CHECK, '--only', 'bench'],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    names = ' '.join(s for s, _, _ in _table())
    assert f"--only names 'bench'; the steps are: {names}" in proc.stderr
