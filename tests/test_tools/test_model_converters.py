"""tools/model_converters/sbnet_to_mmsb.py on files built the way timm's
CheckpointSaver writes them for the authors' train.py (tests/utils.py): what
it converts, and the one ``error: ...`` line of each refusal."""
import argparse
import contextlib
import io
import os
import os.path as osp
import pickle
import subprocess
import sys
import types

import pytest
import torch
import torch.nn as nn
from mmdet.models.backbones import ResNet
from utils import (HAS_ALLOWLIST, REPO, authors_layout, classifier, env,
                   listing, load_tool, old_layout, randomize,
                   saver_checkpoint)

from mmsb.converters import load_training_checkpoint
from mmsb.models import SBResNet, SBResNetCIFAR

TOOL = osp.join(REPO, 'tools', 'model_converters', 'sbnet_to_mmsb.py')
ENV = env()


def run_tool(*args):
    """The tool's main(argv), run in this process (the stack is imported
    once for the whole module, not once per call), as a finished process:
    ``returncode``, ``stdout``, ``stderr``. ``sys.exit('error: ...')``
    becomes exit status 1 and that line on stderr, as Python makes it.
    test_tool_runs_as_a_process runs the file itself once."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            load_converter().main([str(a) for a in args])
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(),
                                 stderr=err.getvalue())


def run_tool_process(*args):
    return subprocess.run([sys.executable, TOOL, *map(str, args)], cwd=REPO,
                          env=ENV, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope='module')
def imagenet_run(tmp_path_factory):
    """An SB-ResNet-50 run with EMA, as the authors' sb_resnet50 saves it."""
    tmp = tmp_path_factory.mktemp('run')
    model = randomize(SBResNet(depth=50), 1)
    fc = nn.Linear(2048, 1000)
    ema_model = randomize(SBResNet(depth=50), 2).eval()
    ema_fc = nn.Linear(2048, 1000)
    ema_sd = authors_layout(ema_model.state_dict(), ema_fc)
    path = tmp / 'model_best.pth.tar'
    state = saver_checkpoint(path, model, fc, ema_sd)
    return path, state, (model, fc), (ema_model, ema_fc)


# ------------------------------------------------- the CheckpointSaver file
def test_tool_converts_state_dict_and_ema_of_a_saver_file(imagenet_run,
                                                          tmp_path):
    from mmengine.runner import load_checkpoint
    src, state, (model, fc), (ema_model, ema_fc) = imagenet_run
    x = torch.rand(2, 3, 64, 64)
    cfg = dict(type='SBResNet', depth=50, sb_stages=(True, True, True, False),
               sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10))

    # Without --ema: the trained model's state_dict, never the EMA.
    cls_out = tmp_path / 'sb-r50_in1k.pth'
    res = run_tool(src, cls_out)
    assert res.returncode == 0, res.stderr
    assert ('took state_dict (epoch 7, arch sb_resnet50, metric 71.25)'
            in res.stdout), res.stdout
    assert f'backbone config: {cfg}' in res.stdout
    assert 'head: num_classes=1000, in_channels=2048' in res.stdout
    clf = classifier(cfg, 1000, 2048)
    load_checkpoint(clf, str(cls_out), strict=True)
    with torch.no_grad():
        ref = fc(model(x)[-1].mean((2, 3)))
        torch.testing.assert_close(clf.eval()(x, mode='tensor'), ref,
                                   atol=1e-4, rtol=1e-4)
    meta = torch.load(cls_out, weights_only=True)['meta']
    assert meta['source_state_dict'] == 'state_dict'
    assert meta['source'] == dict(epoch=7, arch='sb_resnet50', metric=71.25)

    # --ema: state_dict_ema, here as a bare backbone.
    bb_out = tmp_path / 'sb-r50_ema.pth'
    res = run_tool(src, bb_out, '--ema', '--backbone-only')
    assert res.returncode == 0, res.stderr
    assert 'took state_dict_ema (epoch 7' in res.stdout, res.stdout
    assert 'head:' not in res.stdout
    bb = SBResNet(**{k: v for k, v in cfg.items() if k != 'type'})
    load_checkpoint(bb, str(bb_out), strict=True)
    mix = 'layer2.1.spatial_bias.mix.weight'
    torch.testing.assert_close(bb.state_dict()[mix],
                               state['state_dict_ema'][
                                   'layer2.1.SB.sb_conv.weight'])
    assert not torch.equal(bb.state_dict()[mix],
                           model.state_dict()[mix])
    with torch.no_grad():
        torch.testing.assert_close(bb.eval()(x)[-1], ema_model(x)[-1])

    # An existing output is kept.
    before = os.path.getmtime(bb_out)
    res = run_tool(src, bb_out)
    assert res.returncode != 0 and 'exists' in res.stderr
    assert os.path.getmtime(bb_out) == before


@pytest.mark.slow
def test_tool_runs_as_a_process(imagenet_run, tmp_path):
    """The file itself, as a user runs it: a fresh process that imports
    what it needs, converts, and refuses to overwrite (exit status 1)."""
    src = imagenet_run[0]
    dst = tmp_path / 'sb-r50_in1k.pth'
    res = run_tool_process(src, dst, '--ema')
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'took state_dict_ema (epoch 7' in res.stdout, res.stdout
    assert torch.load(dst, weights_only=True)['meta']['source_state_dict'] \
        == 'state_dict_ema'
    again = run_tool_process(src, dst)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines()[-1].startswith('error: ')
    assert 'exists' in again.stderr


def test_ema_missing_is_named_by_the_tool(tmp_path):
    model = SBResNetCIFAR(depth=11, sb_cfg=dict(pooled_size=10))
    src = tmp_path / 'checkpoint-7.pth.tar'
    saver_checkpoint(src, model, nn.Linear(256, 10))
    res = run_tool(src, tmp_path / 'out.pth', '--ema')
    assert res.returncode != 0
    assert "no 'state_dict_ema'" in res.stderr and "'state_dict'" in \
        res.stderr, res.stderr
    assert not (tmp_path / 'out.pth').exists()


# -------------------------------------------------------------- safe loading
class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _evil_saver_file(tmp_path, payload):
    model = SBResNetCIFAR(depth=11, sb_cfg=dict(pooled_size=10))
    path = tmp_path / 'model_best.pth.tar'
    saver_checkpoint(path, model, nn.Linear(256, 10),
                     extra=dict(payload=payload))
    return path


@pytest.mark.parametrize('kind', ['system', 'class'])
def test_forbidden_globals_are_refused(tmp_path, kind):
    marker = tmp_path / 'pwned'
    if kind == 'system':
        payload, words = _Reduce(os.system, (f'touch {marker}', )), 'system'
    else:  # a Namespace look-alike that is not on the allowlist
        payload, words = types.SimpleNamespace(a=1), 'SimpleNamespace'
    src = _evil_saver_file(tmp_path, payload)
    with pytest.raises(pickle.UnpicklingError, match=words):
        load_training_checkpoint(str(src))
    assert not marker.exists()
    if kind == 'system':
        dst = tmp_path / 'out.pth'
        res = run_tool(src, dst)
        assert res.returncode != 0
        assert 'refused by torch.load(weights_only=True)' in res.stderr
        assert 'system' in res.stderr, res.stderr
        assert not marker.exists() and not dst.exists()


# ------------------------------------------------------- unconvertible files
@pytest.mark.parametrize('case', ['old-layout', 'basic-blocks'])
def test_tool_refuses_unconvertible_files(tmp_path, case):
    if case == 'old-layout':
        sd = old_layout(authors_layout(SBResNetCIFAR(depth=11).state_dict()))
        words = 'unsupported layout'
    else:
        sd = ResNet(depth=18).state_dict()
        words = 'block counts (2, 2, 2, 2)'
    src = tmp_path / 'model_best.pth.tar'
    torch.save({'epoch': 3, 'arch': 'spatial_bias', 'state_dict': sd,
                'optimizer': {'state': {}, 'param_groups': []},
                'version': 2,
                **({'args': argparse.Namespace(model='x')}
                   if HAS_ALLOWLIST else {})}, src)
    dst = tmp_path / 'out.pth'
    res = run_tool(src, dst)
    assert res.returncode != 0
    assert words in res.stderr, res.stderr
    assert not dst.exists()


# ------------------------------------------------- refusals, in-process
# Each refusal of the tool is the one line ``sys.exit('error: ...')`` makes
# Python print on stderr (exit status 1), given before anything is written.
def load_converter():
    """tools/model_converters/sbnet_to_mmsb.py as a module."""
    return load_tool('model_converters/sbnet_to_mmsb')


def refusal(capsys, *argv):
    """The tool's main(argv) in this process: the line it ends with."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        load_converter().main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert not out.strip() and not err.strip(), (out, err)
    assert isinstance(exc.value.code, str), exc.value.code  # exit status 1
    assert len(exc.value.code.splitlines()) == 1, exc.value.code
    return exc.value.code


@pytest.fixture(scope='module')
def cifar11():
    """The authors' smallest CIFAR SB-ResNet (depth 11: one bottleneck per
    stage; spatial bias in stages 1-2, P=10), in their key layout."""
    return authors_layout(
        SBResNetCIFAR(depth=11, sb_cfg=dict(pooled_size=10)).state_dict())


CIFAR11 = dict(type='SBResNetCIFAR', depth=11, sb_stages=(True, True, False),
               sb_cfg=dict(num_bias=3, kernel_size=3, pooled_size=10))


def test_tool_refuses_a_missing_source(tmp_path, capsys):
    src, dst = tmp_path / 'model_best.pth.tar', tmp_path / 'out.pth'
    line = refusal(capsys, src, dst)
    assert line == f'error: source checkpoint not found: {src}'
    assert listing(tmp_path) == {}


def test_tool_refuses_to_overwrite_without_force(tmp_path, cifar11, capsys):
    src, dst = tmp_path / 'last.pth.tar', tmp_path / 'out.pth'
    torch.save(cifar11, src)
    dst.write_bytes(b'an earlier conversion')
    folder = tmp_path / 'converted'
    folder.mkdir()
    before = listing(tmp_path)
    line = refusal(capsys, src, dst)
    assert line == f'error: {dst} exists; pass --force to overwrite it'
    assert listing(tmp_path) == before
    # A directory is not overwritten, even with --force.
    line = refusal(capsys, src, folder, '--force')
    assert line == (f'error: {folder} is a directory; expected the path of '
                    f'the file to write')
    assert listing(tmp_path) == before


def test_tool_overwrites_with_force(tmp_path, cifar11, capsys):
    src, dst = tmp_path / 'last.pth.tar', tmp_path / 'out.pth'
    torch.save(cifar11, src)
    dst.write_bytes(b'an earlier conversion')
    load_converter().main([str(src), str(dst), '--backbone-only', '--force'])
    out = capsys.readouterr().out
    assert f'wrote {len(cifar11)} tensors to {dst}' in out, out
    assert f'backbone config: {CIFAR11}' in out
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['backbone'] == CIFAR11
    assert set(saved['state_dict']) == {
        k.replace('.SB.feature_reduction.0.', '.spatial_bias.reduce.')
         .replace('.SB.feature_reduction.1.', '.spatial_bias.bn.')
         .replace('.SB.sb_conv.', '.spatial_bias.mix.') for k in cifar11}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'last.pth.tar', 'out.pth']                  # no .tmp left behind


# The source (bytes as they are, anything else through torch.save) -> what
# follows "error: <src>: ".
UNREADABLE = {
    'empty file': (b'', 'ValueError: not a file torch.load can read (empty, '
                   'truncated or not written by torch.save): EOFError'),
    'text file': (b'hello world', 'ValueError: not a file torch.load can '
                  'read (empty, truncated or not written by torch.save): '
                  'KeyError: 101'),
    'list': ([torch.zeros(2)], 'ValueError: the checkpoint is a list, not a '
             'dict holding a state dict'),
    'tensor': (torch.zeros(2), 'ValueError: the checkpoint is a Tensor, not '
               'a dict holding a state dict'),
    'empty dict': ({}, "KeyError: the checkpoint has no 'state_dict'; its "
                   'keys: []'),
    'no state_dict': ({'epoch': 3, 'arch': 'sb_resnet50'},
                      "KeyError: the checkpoint has no 'state_dict'; its "
                      "keys: ['arch', 'epoch']"),
    'tensor-free state_dict': ({'epoch': 3, 'state_dict': {'epoch': 3}},
                               "ValueError: 'state_dict' holds no tensors"),
    'state_dict not a dict': ({'state_dict': [torch.zeros(2)]},
                              "KeyError: the checkpoint has no 'state_dict'; "
                              "its keys: ['state_dict']"),
}


@pytest.mark.parametrize('case', list(UNREADABLE))
def test_tool_refuses_files_without_a_state_dict(tmp_path, capsys, case):
    content, expected = UNREADABLE[case]
    src, dst = tmp_path / 'model_best.pth.tar', tmp_path / 'out' / 'x.pth'
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        torch.save(content, src)
    line = refusal(capsys, src, dst)
    assert line == f'error: {src}: {expected}'
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


def _rename_block(sd, src, dst):
    return {(dst + k[len(src):] if k.startswith(src + '.') else k): v
            for k, v in sd.items()}


def _malformed(case, sd):
    """The authors' CIFAR-11 state dict spoilt one way -> the error."""
    fit = f'the tensors do not fit {CIFAR11}'
    if case == 'gap in layers':
        return ({k: v for k, v in sd.items() if not k.startswith('layer2.')},
                'stages [1, 3] found; expected layer1 to layerN')
    if case == 'gap in blocks':
        return (_rename_block(sd, 'layer2.0', 'layer2.1'),
                'layer2 has blocks [1]; expected 0 to n-1')
    if case == 'no blocks':
        return ({k: v for k, v in sd.items() if not k.startswith('layer')},
                'no ResNet blocks (layerX.Y.*) found')
    if case == 'mixed block types':
        return ({k: v for k, v in sd.items()
                 if not k.startswith(('layer2.0.conv3.', 'layer2.0.bn3.'))},
                "blocks ['layer2.0'] have no conv3 while the others are "
                'bottlenecks (block counts (1, 1, 1))')
    mix = 'layer1.0.SB.sb_conv.weight'
    if case == 'sb_conv with a 2-D kernel':
        return (dict(sd, **{mix: sd[mix].unsqueeze(2)}),
                'layer1.0.SB: expected feature_reduction.0.weight and a 1-D '
                'sb_conv.weight of shape (P*P, P*P, k), got sb_conv '
                '(100, 100, 1, 3)')
    if case == 'sb_conv without feature_reduction':
        return ({k: v for k, v in sd.items()
                 if k != 'layer1.0.SB.feature_reduction.0.weight'},
                'layer1.0.SB: expected feature_reduction.0.weight and a 1-D '
                'sb_conv.weight of shape (P*P, P*P, k), got sb_conv '
                '(100, 100, 3)')
    if case == 'sb_conv not square':
        return (dict(sd, **{mix: torch.zeros(99, 99, 3)}),
                'layer1.0.SB.sb_conv mixes 99 positions, not a square P*P')
    if case == 'fewer bias maps than the kernel':
        red = 'layer1.0.SB.feature_reduction.0.weight'
        bad = dict(CIFAR11, sb_cfg=dict(num_bias=-1, kernel_size=3,
                                        pooled_size=10))
        return (dict(sd, **{red: sd[red][:1]}),
                f'inferred {bad} cannot be built: SpatialBias: num_bias must '
                f'be an int >= 1, got -1')
    if case == 'missing key':
        return ({k: v for k, v in sd.items()
                 if k != 'layer3.0.bn2.running_mean'},
                f"{fit}: missing: ['layer3.0.bn2.running_mean']")
    if case == 'unexpected key':
        return (dict(sd, **{'layer3.0.conv4.weight': torch.zeros(1)}),
                f"{fit}: unexpected: ['layer3.0.conv4.weight']")
    if case == 'foreign key':
        return (dict(sd, **{'layer3.0.se.fc.weight': torch.zeros(1)}),
                "1 key(s) are not part of an SB-ResNet checkpoint: "
                "['layer3.0.se.fc.weight']")
    raise AssertionError(case)


@pytest.mark.parametrize('case', [
    'gap in layers', 'gap in blocks', 'no blocks', 'mixed block types',
    'sb_conv with a 2-D kernel', 'sb_conv without feature_reduction',
    'sb_conv not square', 'fewer bias maps than the kernel', 'missing key',
    'unexpected key', 'foreign key'])
def test_tool_refuses_malformed_state_dicts(tmp_path, cifar11, capsys, case):
    sd, expected = _malformed(case, cifar11)
    src, dst = tmp_path / 'last.pth.tar', tmp_path / 'out.pth'
    torch.save({'epoch': 3, 'arch': 'resnet_cifar', 'state_dict': sd}, src)
    line = refusal(capsys, src, dst, '--force')
    assert line == f'error: {src}: ValueError: {expected}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last.pth.tar']
