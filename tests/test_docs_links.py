# Copyright (c) mmsb contributors. All rights reserved.
"""Every relative link in README.md, docs/**/*.md and configs/*/README.md
resolves: the file exists, and a ``#anchor`` names a heading of the target
markdown file (GitHub's slug of it). Moving text between README and docs
then cannot leave a dead link behind.

External links (``http:``, ``https:``, ``mailto:`` ...) are not followed:
nothing reaches the network at test time.
"""
import glob
import os.path as osp
import re
from urllib.parse import unquote, urlparse

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

_FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})')
_CODE_SPAN = re.compile(r'(`+)(.+?)\1')
# [text](target) and ![alt](target), with an optional "title"; the text may
# hold one level of brackets ([`a`](b), [see [1]](c)).
_LINK = re.compile(r'!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]'
                   r'\(\s*<?([^)\s>]*)>?(?:\s+(?:"[^"]*"|\'[^\']*\'))?\s*\)')
_REF_DEF = re.compile(r'^ {0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s+.*)?$')
_HTML_REF = re.compile(r'<(?:a|img)\b[^>]*?\b(?:href|src)="([^"]*)"', re.I)
_HTML_ID = re.compile(r'<a\b[^>]*?\b(?:name|id)="([^"]+)"', re.I)
_ATX = re.compile(r'^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$')
_SETEXT = re.compile(r'^ {0,3}(=+|-+)[ \t]*$')


def markdown_files():
    files = [osp.join(ROOT, 'README.md')]
    files += glob.glob(osp.join(ROOT, 'docs', '**', '*.md'), recursive=True)
    files += glob.glob(osp.join(ROOT, 'configs', '*', 'README.md'))
    return sorted(files)


def _prose_lines(text):
    """(line number, line) of every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(1)
        elif fence is not None:
            if m and m.group(1)[0] == fence[0] and \
                    len(m.group(1)) >= len(fence) and \
                    not line.strip()[len(m.group(1)):]:
                fence = None
        else:
            yield number, line


def slugify(heading):
    """GitHub's anchor for a heading: its text lower-cased, punctuation but
    '-' and '_' dropped, every space a '-'."""
    text = re.sub(r'<[^>]+>', '', heading)  # inline HTML
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', text)  # links -> text
    text = text.replace('`', '').replace('*', '')
    text = text.strip().lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors(path):
    """Every anchor a markdown file defines: heading slugs (a repeated slug
    gets -1, -2 ... as on GitHub) and explicit <a name/id="...">."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    found, seen = set(), {}
    previous = ''
    for _, line in _prose_lines(text):
        heading = None
        m = _ATX.match(line)
        if m:
            heading = m.group(2) or ''
        elif _SETEXT.match(line) and previous.strip() and \
                not previous.lstrip().startswith(('|', '-', '*', '>')):
            heading = previous.strip()
        if heading is not None:
            slug = slugify(heading)
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f'{slug}-{n}')
        found.update(_HTML_ID.findall(line))
        previous = line
    return found


def links(path):
    """(line number, text, target) of every link in a markdown file, outside
    code blocks and code spans."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    for number, line in _prose_lines(text):
        m = _REF_DEF.match(line)
        if m:
            yield number, m.group(1), m.group(2)
            continue
        # a code span shows link syntax, it does not link: blank its
        # brackets (a link's text may still be a code span)
        prose = _CODE_SPAN.sub(lambda c: re.sub(r'[\[\]()]', ' ', c.group(0)),
                               line)
        for m in _LINK.finditer(prose):
            yield number, m.group(1), m.group(2)
        for target in _HTML_REF.findall(prose):
            yield number, '<html>', target


def broken_links(files, root=ROOT):
    """'file:line: [text](target): why' for every relative link in ``files``
    that does not resolve."""
    problems = []
    anchor_cache = {}
    for path in files:
        rel = osp.relpath(path, root)
        for number, text, target in links(path):
            url = urlparse(target)
            if url.scheme or target.startswith('//'):
                continue  # external: http(s), mailto, ...
            where = f'{rel}:{number}: [{text}]({target})'
            file_part, anchor = unquote(url.path), unquote(url.fragment)
            if not file_part:
                dest = path
            elif file_part.startswith('/'):
                dest = osp.join(root, file_part.lstrip('/'))
            else:
                dest = osp.join(osp.dirname(path), file_part)
            dest = osp.normpath(dest)
            if not (dest + osp.sep).startswith(osp.join(root, '')):
                problems.append(f'{where}: points outside the repository')
                continue
            if not osp.exists(dest):
                problems.append(
                    f'{where}: {osp.relpath(dest, root)} does not exist')
                continue
            if not anchor or not dest.endswith('.md'):
                continue  # e.g. #L10 on a source file: GitHub's, not ours
            if dest not in anchor_cache:
                anchor_cache[dest] = anchors(dest)
            if anchor not in anchor_cache[dest]:
                problems.append(
                    f'{where}: no heading with anchor #{anchor} in '
                    f'{osp.relpath(dest, root)}')
    return problems


def test_every_relative_link_resolves():
    files = markdown_files()
    assert osp.join(ROOT, 'README.md') in files
    assert any('docs' + osp.sep in f for f in files)
    problems = broken_links(files)
    assert not problems, (
        f'{len(problems)} broken link(s) in README/docs/configs:\n' +
        '\n'.join(problems))


def test_the_checker_finds_links():
    """The README links its docs pages and an anchor in a config README; if
    the parser stopped seeing links, the test above would pass vacuously."""
    targets = [t for _, _, t in links(osp.join(ROOT, 'README.md'))]
    assert 'docs/install.md' in targets
    assert any('#' in t and not t.startswith('http') for t in targets)


def test_slugs_are_githubs():
    assert slugify('Tested versions') == 'tested-versions'
    assert slugify('Compatibility across PyTorch versions (`mmsb/compat.py`)'
                   ) == 'compatibility-across-pytorch-versions-mmsbcompatpy'
    assert slugify('Fewer GPUs than the recipe: `auto_scale_lr`') == \
        'fewer-gpus-than-the-recipe-auto_scale_lr'
    assert slugify('Mixed precision (beyond the paper)') == \
        'mixed-precision-beyond-the-paper'
    assert slugify('SB − plain [95% CI] × 2') == 'sb--plain-95-ci--2'
    assert slugify('[docs](x.md) and <b>bold</b>') == 'docs-and-bold'


def test_broken_links_are_reported(tmp_path):
    """The checker names the file, line, link and reason of each failure."""
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'a.md').write_text(
        '# Top\n\n## Same name\n\n## Same name\n\n```\n[in code](nowhere.md)\n'
        '```\n',
        encoding='utf-8')
    page = tmp_path / 'README.md'
    page.write_text(
        '# Readme\n'
        '[ok](docs/a.md) [ok](docs/a.md#same-name-1) [ok](#readme)\n'
        '[web](https://example.com/x#y) [mail](mailto:a@b.c) `[code](no.md)`\n'
        '[gone](docs/b.md)\n'
        '[bad anchor](docs/a.md#same-name-2)\n'
        '![img](#nope)\n',
        encoding='utf-8')
    problems = broken_links(
        [str(page), str(tmp_path / 'docs' / 'a.md')], root=str(tmp_path))
    assert problems == [
        'README.md:4: [gone](docs/b.md): docs/b.md does not exist',
        'README.md:5: [bad anchor](docs/a.md#same-name-2): no heading with '
        'anchor #same-name-2 in docs/a.md',
        'README.md:6: [img](#nope): no heading with anchor #nope in '
        'README.md',
    ]
