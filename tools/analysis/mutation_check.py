# Copyright (c) mmsb contributors. All rights reserved.
"""Would the fast tests notice a wrong spatial bias? A mutation check.

Each mutant is one exact-text replacement in mmsb's code, a plausible wrong
implementation. They are applied one at a time to a temporary copy of the
repository (the real files are never touched), the fast tests run there
(``-m "not slow" -x``, ``PYTHONPATH`` on the copy), and a markdown table says
which test killed each mutant. Exit status 1 when one survives, or when the
unmutated copy does not pass.

    python tools/analysis/mutation_check.py [--only NAME ...] [--tests ...]
"""
import argparse
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tempfile

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
COPY = ('mmsb', 'tests', 'tools', 'configs', 'pytest.ini', 'setup.py')
# The reference test first: with -x a mutant it kills costs seconds.
TESTS = ('tests/test_models/test_backbones/test_sb_reference.py',
         'tests/test_models', 'tests/test_converters.py',
         'tests/test_tools/test_model_converters.py')

SB = 'mmsb/models/layers/spatial_bias.py'
BLOCK = 'mmsb/models/backbones/sb_resnet.py'
CONV = 'mmsb/converters.py'
_SB_AT_CONV2 = ('            bias = sb(out) if at_conv2 else None\n'
                '            out = self.conv2(out)\n')
_FUSE_AT_CONV2 = ('            out = self.conv2(out)\n'
                  '            if at_conv2:\n'
                  '                out = sb.fuse(out, bias)')

# (name, file, exact old text, new text)
MUTANTS = [
    ('upsampling with align_corners=True', SB,
     "mode='bilinear', align_corners=False)",
     "mode='bilinear', align_corners=True)"),
    ('nearest upsampling', SB,
     "mode='bilinear', align_corners=False)", "mode='nearest')"),
    ('max pooling instead of average', SB,
     'return F.adaptive_avg_pool2d(x, p)',
     'return F.adaptive_max_pool2d(x, p)'),
    ('positions flattened column-major', SB,
     'seq = y.flatten(2).transpose(1, 2)',
     'seq = y.transpose(2, 3).flatten(2).transpose(1, 2)'),
    ('mixed maps read along the wrong axis', SB,
     'return seq.transpose(1, 2).reshape(', 'return seq.reshape('),
    ('mixing taps reversed', SB,
     'seq = self.mix(seq)', 'seq = self.mix(seq.flip(-1)).flip(-1)'),
    ('mixing conv without its bias', SB,
     'seq = self.mix(seq)', 'seq = F.conv1d(seq, self.mix.weight)'),
    ('branch BN and ReLU swapped', SB,
     'y = self.act(self.norm(self.reduce(x)))',
     'y = self.norm(self.act(self.reduce(x)))'),
    ('branch BN dropped', SB,
     'y = self.act(self.norm(self.reduce(x)))',
     'y = self.act(self.reduce(x))'),
    ("fusion='add' mapping shifted by one", SB,
     'up.repeat(1, reps, 1, 1)[:, :channels]',
     'up.repeat(1, reps + 1, 1, 1)[:, 1:channels + 1]'),
    ("fusion='add' maps in blocks, not c mod K", SB,
     'up.repeat(1, reps, 1, 1)[:, :channels]',
     'up.repeat_interleave(reps, 1)[:, :channels]'),
    ("SB from conv2's output", BLOCK, _SB_AT_CONV2,
     '            out = self.conv2(out)\n'
     '            bias = sb(out) if at_conv2 else None\n'),
    ('SB from a pre-activation (bn1 output before ReLU)', BLOCK,
     'bias = sb(out) if at_conv2 else None',
     'bias = sb(self.norm1(self.conv1(x))) if at_conv2 else None'),
    ('bias maps joined before conv2', BLOCK, _FUSE_AT_CONV2,
     '            if at_conv2:\n'
     '                out = self.conv2(sb.fuse(out, bias))\n'
     '            else:\n'
     '                out = self.conv2(out)'),
    ('widened-norm weight filled with 0', BLOCK,
     "(('weight', 1.0), ('bias', 0.0),", "(('weight', 0.0), ('bias', 0.0),"),
    ('widened-norm running_mean filled with 1', BLOCK,
     "('running_mean', 0.0), ('running_var', 1.0)",
     "('running_mean', 1.0), ('running_var', 1.0)"),
    ('widened-norm running_var filled with 0', BLOCK,
     "('running_mean', 0.0), ('running_var', 1.0)",
     "('running_mean', 0.0), ('running_var', 0.0)"),
    ('next conv padded with ones, not zeros', BLOCK,
     'pad = ckpt.new_zeros(', 'pad = ckpt.new_ones('),
    ("converter's tap order reversed", CONV,
     "converted[('backbone.' if with_head else '') + new] = value",
     "converted[('backbone.' if with_head else '') + new] = (\n"
     "            value.flip(-1) if new.endswith('mix.weight') else value)"),
]


def run_tests(root, tests):
    env = dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE='1')
    cmd = [sys.executable, '-m', 'pytest', *tests, '-m', 'not slow', '-x',
           '-q', '-p', 'no:cacheprovider']
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True,
                          text=True)
    text = proc.stdout + proc.stderr
    first = re.search(r'^(?:FAILED|ERROR) (\S+)', text, re.M)
    return proc.returncode, (first.group(1) if first else None), text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', nargs='+', help='mutant names to run')
    parser.add_argument('--tests', nargs='+', default=list(TESTS))
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if not args.only or m[0] in args.only]

    with tempfile.TemporaryDirectory(prefix='mmsb-mutants-') as root:
        for name in COPY:
            src, dst = osp.join(REPO, name), osp.join(root, name)
            if osp.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                    '__pycache__', '*.egg-info'))
            else:
                shutil.copy2(src, dst)
        originals = {}
        for name, path, old, _ in mutants:  # all checked before any run
            with open(osp.join(root, path)) as f:
                text = originals.setdefault(path, f.read())
            if text.count(old) != 1:
                sys.exit(f'mutant {name!r}: its old text occurs '
                         f'{text.count(old)} times in {path}, expected once')
        probe = subprocess.run(
            [sys.executable, '-c', 'import mmsb; print(mmsb.__file__)'],
            cwd=root, env=dict(os.environ, PYTHONPATH=root),
            capture_output=True, text=True)
        if not probe.stdout.startswith(root):
            sys.exit(f'the copy does not shadow mmsb: {probe.stdout}'
                     f'{probe.stderr}')
        rc, failed, text = run_tests(root, args.tests)
        if rc != 0:
            print(text[-3000:])
            sys.exit(f'the unmutated copy fails ({failed}); no mutant run')

        rows, survivors = [], 0
        for name, path, old, new in mutants:
            target = osp.join(root, path)
            with open(target, 'w') as f:
                f.write(originals[path].replace(old, new))
            try:
                rc, failed, _ = run_tests(root, args.tests)
            finally:
                with open(target, 'w') as f:
                    f.write(originals[path])
            killed = rc != 0
            survivors += not killed
            rows.append(f'| {name} | {"yes" if killed else "**no**"} | '
                        f'{failed or ("rc=%d" % rc if killed else "-")} |')
    print('| mutant | killed? | first failing test |')
    print('|---|---|---|')
    print('\n'.join(rows))
    print(f'\n{len(rows) - survivors} of {len(rows)} mutants killed by '
          f'{" ".join(args.tests)} (-m "not slow" -x)')
    return 1 if survivors else 0


if __name__ == '__main__':
    sys.exit(main())
