# Copyright (c) mmsb contributors. All rights reserved.
"""Is this environment one mmsb supports? ::

    python mmsb/check.py        # from a checkout: imports nothing of the stack
    python -m mmsb.check        # any install where `import mmsb` works

Compares what is installed with the ranges of ``requirements/supported.txt``
(torch, mmcv with its compiled ops, mmengine, mmdet; mmsegmentation and
mmpretrain for their configs), reading package metadata only: it imports
none of them, so it also answers where an import would fail. Prints one row
per package and exits 1 naming every required package that is missing or
out of range (or mmcv without ops), 0 otherwise.

``pip install mmsb`` installs none of these packages (requirements/
runtime.txt), so it never replaces the torch or mmcv of an environment; this
command says what that environment lacks. Run as a file it imports only
the standard library and ``packaging``, so it answers where ``import mmsb``
fails.
"""
import os.path as osp
import sys

if not __package__:  # run as a file: mmsb/ must not shadow other modules
    _HERE = osp.dirname(osp.abspath(__file__))
    sys.path[:] = [p for p in sys.path if osp.abspath(p or '.') != _HERE]

import argparse  # noqa: E402
import re  # noqa: E402
from importlib import metadata  # noqa: E402
from typing import List, Optional

from packaging.requirements import Requirement  # noqa: E402
from packaging.version import InvalidVersion, Version  # noqa: E402

__all__ = ['supported_ranges', 'check_environment', 'main']


def _supported_file() -> str:
    """requirements/supported.txt: in a checkout (or an editable install),
    else where a wheel ships it (mmsb/.mim/requirements)."""
    here = osp.dirname(osp.abspath(__file__))
    for path in (osp.join(here, '..', 'requirements', 'supported.txt'),
                 osp.join(here, '.mim', 'requirements', 'supported.txt')):
        if osp.isfile(path):
            return osp.normpath(path)
    raise FileNotFoundError(
        f'mmsb.check: requirements/supported.txt not found beside {here} '
        f'(a broken install? reinstall mmsb)')


def supported_ranges(path: Optional[str] = None) -> List[dict]:
    """``[{'name', 'specifier', 'range' (as written), 'optional': None or
    the extra}]`` from
    ``supported.txt`` (a trailing ``# optional: <extra>`` marks a package
    only some configs need)."""
    path = path or _supported_file()
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            req, _, comment = line.partition('#')
            if not req.strip():
                continue
            r = Requirement(req.strip())
            m = re.match(r'\s*optional:\s*(\S+)', comment)
            out.append(dict(name=r.name, specifier=r.specifier,
                            range=req.strip()[len(r.name):].strip(),
                            optional=m.group(1) if m else None))
    return out


def _installed(name: str):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _mmcv_has_ops() -> Optional[bool]:
    """Whether the installed mmcv holds its compiled ops (``mmcv/_ext*``),
    from its file list; None if the list is unknown."""
    try:
        files = metadata.files('mmcv')
    except metadata.PackageNotFoundError:
        return None
    if files is None:
        return None
    return any(re.match(r'mmcv/_ext\b', str(f)) for f in files)


def check_environment(ranges: Optional[List[dict]] = None) -> List[dict]:
    """One row per supported package: ``name``, ``installed`` (or None),
    ``specifier``, ``optional``, ``status`` ('ok', 'missing', 'out of
    range', 'no ops') and ``problem``: True where mmsb cannot work (a
    required package not 'ok'; an optional one only warns)."""
    rows = []
    for r in ranges or supported_ranges():
        version = _installed(r['name'])
        if version is None:
            status = 'missing'
        else:
            try:
                inside = r['specifier'].contains(
                    Version(version).base_version, prereleases=True)
            except InvalidVersion:
                inside = False
            status = 'ok' if inside else 'out of range'
            # torch's local tag (+cu130, +cpu) says nothing of the range
        if status == 'ok' and r['name'] == 'mmcv' and \
                _mmcv_has_ops() is False:
            status = 'no ops'
        rows.append(dict(r, installed=version, status=status,
                         problem=status != 'ok' and not r['optional']))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description='Check that the installed torch, mmcv and OpenMMLab '
        'packages are within the ranges mmsb supports.')
    p.parse_args(argv)
    rows = check_environment()
    print(f'mmsb: Python {sys.version.split()[0]} at {sys.executable}')
    print(f'{"package":<16}{"installed":<14}{"supported":<18}status')
    for r in rows:
        note = r['status']
        if r['optional']:
            note += f' (optional: [{r["optional"]}] configs)'
        print(f'{r["name"]:<16}{r["installed"] or "-":<14}'
              f'{r["range"]:<18}{note}')
    bad = [r for r in rows if r['problem']]
    for r in bad:
        if r['status'] == 'missing':
            what = 'is not installed'
        elif r['status'] == 'no ops':
            what = (f'{r["installed"]} has no compiled ops (mmcv-lite?); '
                    f'install mmcv with MMCV_WITH_OPS=1')
        else:
            what = f'{r["installed"]} is outside the supported range'
        print(f'error: {r["name"]} {what}: mmsb needs {r["name"]}'
              f'{r["range"]} (docs/install.md)', file=sys.stderr)
    optional_bad = [r for r in rows if r['optional'] and
                    r['status'] == 'out of range']
    for r in optional_bad:
        print(f'warning: {r["name"]} {r["installed"]} is outside '
              f'{r["range"]}: its configs may fail', file=sys.stderr)
    if not bad:
        print('mmsb: this environment is within the supported ranges')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
