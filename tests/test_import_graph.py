"""Importing mmsb: no import circle among its modules, each module of
mmsb.models imports alone, and ``import mmsb`` only registers (no
``torch.save``/``torch.load`` round trip)."""
import ast
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
PY = sys.executable
ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')


def _modules():
    """Dotted name -> (path, is_package) for every ``mmsb/**.py``."""
    found = {}
    for dirpath, _, files in os.walk(osp.join(ROOT, 'mmsb')):
        for f in files:
            if not f.endswith('.py'):
                continue
            path = osp.join(dirpath, f)
            parts = osp.relpath(path, ROOT)[:-3].split(os.sep)
            is_package = parts[-1] == '__init__'
            if is_package:
                parts = parts[:-1]
            found['.'.join(parts)] = (path, is_package)
    return found


def import_graph():
    """Module -> the mmsb modules it imports, at module or function level.

    An edge goes to the module an import names (``from . import models`` to
    ``mmsb.models``, ``from mmsb.registry import MODELS`` to
    ``mmsb.registry``); the parent packages Python runs first are no edges.
    """
    modules = _modules()

    def known(name):  # the longest prefix of `name` that is a module
        while name and name not in modules:
            name = name.rpartition('.')[0]
        return name

    graph = {}
    for name, (path, is_package) in modules.items():
        with open(path, encoding='utf-8') as f:
            tree = ast.parse(f.read(), path)
        package = name if is_package else name.rpartition('.')[0]
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit('.', node.level - 1)[0] \
                        if node.level > 1 else package
                    base = '.'.join(filter(None, [base, node.module]))
                else:
                    base = node.module or ''
                for a in node.names:
                    sub = f'{base}.{a.name}'
                    targets.add(sub if sub in modules else known(base))
        graph[name] = sorted(t for t in targets if t and t != name)
    return graph


def find_cycle(graph):
    """One import circle as a list of modules, or None."""
    state = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def test_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert 'mmsb.models' in graph['mmsb']  # from . import models
    assert 'mmsb.registry' in graph['mmsb.models.backbones.sb_resnet']
    assert 'mmsb.models.layers' in graph['mmsb.models.backbones.sb_resnet']
    assert find_cycle({'a': ['b'], 'b': ['c'], 'c': ['a']}) == \
        ['a', 'b', 'c', 'a']
    assert find_cycle({'a': ['b'], 'b': []}) is None


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import circle: ' + ' -> '.join(cycle)


MODELS_MODULES = sorted(m for m in _modules() if m.split('.')[:2] == [
    'mmsb', 'models'
])


@pytest.mark.slow
@pytest.mark.parametrize('module', MODELS_MODULES)
def test_each_models_module_imports_alone(module):
    res = subprocess.run([PY, '-c', f'import {module}'], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]


_NO_ROUND_TRIP = """
import torch

def refuse(*args, **kwargs):
    raise AssertionError('import mmsb ran a torch.save/torch.load')

torch.save = torch.load = refuse
torch.serialization.save = torch.serialization.load = refuse
import mmsb
from mmdet.registry import MODELS
print(MODELS.get('SBResNet') is mmsb.models.SBResNet)
"""


@pytest.mark.slow
def test_import_does_no_save_load_round_trip():
    res = subprocess.run([PY, '-c', _NO_ROUND_TRIP], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ['True']
