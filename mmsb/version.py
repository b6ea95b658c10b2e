__version__ = '0.1.0'


def _parse(version):
    parts = []
    for p in version.split('.'):
        parts.append(int(p) if p.isdigit() else p)
    return tuple(parts)


version_info = _parse(__version__)
