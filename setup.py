#!/usr/bin/env python
# Copyright (c) mmsb contributors. All rights reserved.
"""Package mmsb; configs, tools and model-index ship under mmsb/.mim so that
``mim train mmdet|mmseg|mmpretrain`` and ``mim search mmsb`` find them."""
import os
import os.path as osp
import re
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def readme():
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version():
    scope = {}
    with open(osp.join(HERE, 'mmsb', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'mmsb/version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname):
    """Requirement lines of requirements/<fname>, without comments."""
    reqs = []
    with open(osp.join(HERE, 'requirements', fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def supported(name):
    """The line of requirements/supported.txt that names ``name``."""
    for req in parse_requirements('supported.txt'):
        if re.split(r'[<>=!~ ;\[]', req, 1)[0] == name:
            return req
    raise KeyError(f'requirements/supported.txt has no line for {name}')


def add_mim_extension():
    """Copy (wheel/sdist) or symlink (editable install) configs, tools and
    model-index.yml into mmsb/.mim, the layout OpenMMLab's mim reads."""
    if 'develop' in sys.argv or any('editable' in a for a in sys.argv):
        mode = 'symlink'
    elif any(a in sys.argv for a in ('sdist', 'bdist_wheel', 'install',
                                     'build', 'egg_info')):
        mode = 'copy'
    else:
        return
    # requirements/: supported.txt, which `python -m mmsb.check` reads
    filenames = ['tools', 'configs', 'model-index.yml', 'requirements']
    mim_path = osp.join(HERE, 'mmsb', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for filename in filenames:
        src = osp.join(HERE, filename)
        if not osp.exists(src):
            continue
        tar = osp.join(mim_path, filename)
        if osp.isfile(tar) or osp.islink(tar):
            os.remove(tar)
        elif osp.isdir(tar):
            shutil.rmtree(tar)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), tar)
        elif osp.isfile(src):
            shutil.copyfile(src, tar)
        else:
            shutil.copytree(src, tar)


if __name__ == '__main__':
    add_mim_extension()
    # pip installs no part of the stack unless an extra asks for it
    det = [supported('mmdet')] + parse_requirements('det.txt')
    seg = [supported('mmsegmentation')] + parse_requirements('seg.txt')
    cls = [supported('mmpretrain')]
    # grad-cam's own needs (it also asks for opencv-python-headless).
    cam = parse_requirements('cam.txt') + ['ttach', 'scikit-learn']
    setup(
        name='mmsb',
        version=get_version(),
        description='Spatial Bias (attention-free non-local) backbones for '
        'OpenMMLab: mmdetection, mmsegmentation, mmpretrain',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, spatial bias, non-local, OpenMMLab',
        packages=find_packages(include=['mmsb', 'mmsb.*']),
        include_package_data=True,
        package_data={'mmsb': ['.mim/**/*', '.mim/*']},
        # Declared, not run: 3.8 is the oldest Python of torch 2.1, the
        # oldest supported torch, and the sources parse as 3.8
        # (tests/test_packaging.py). Tested: 3.11 (docs/install.md,
        # "Tested versions").
        python_requires='>=3.8',
        license='Apache License 2.0',
        classifiers=[
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.11',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        install_requires=parse_requirements('runtime.txt'),
        extras_require={
            'det': det,
            'seg': seg,
            'cls': cls,
            'pretrain': cls,
            'cam': cam,
            'all': det + seg + cls + cam + parse_requirements('optional.txt'),
            'tests': parse_requirements('tests.txt'),
        },
        zip_safe=False)
