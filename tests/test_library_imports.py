# Copyright (c) mmsb contributors. All rights reserved.
"""No module of mmsb/ imports a package that mmsb does not require
(docs/contributing.md): code that needs grad-cam, matplotlib or jinja2
lives in tools/. Read from the source (AST), so lazy imports inside
functions count too."""
import ast
import glob
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
EXTRAS = ('pytorch_grad_cam', 'matplotlib', 'jinja2')
MODULES = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'mmsb', '**', '*.py'), recursive=True))


def imported(source):
    """Top-level package names of every import statement in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split('.')[0]


def test_finds_imports_wherever_they_are():
    source = ('import os\n'
              'def draw():\n'
              '    import matplotlib.pyplot as plt\n'
              '    from pytorch_grad_cam import GradCAM\n')
    assert set(imported(source)) == {'os', 'matplotlib', 'pytorch_grad_cam'}


@pytest.mark.parametrize('path', MODULES)
def test_library_imports_no_extra(path):
    with open(osp.join(ROOT, path)) as f:
        found = set(imported(f.read())) & set(EXTRAS)
    assert not found, (f'{path} imports {sorted(found)}: put this code in '
                       f'tools/ (docs/contributing.md)')
