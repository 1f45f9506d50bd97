"""A checkpoint written by mmengine's own Runner (real MMSeg 1.x training) opens without running code.

The file holds ``meta``, ``state_dict``, ``message_hub`` (mmengine
``HistoryBuffer`` objects, numpy arrays, bound methods), ``optimizer`` and
``param_schedulers``: ``torch.load(weights_only=True)`` alone refuses it.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

import ocrviz
from mmseg_env import hr18_model_config, import_mmseg
from ocrviz.checkpoints import UnsafeCheckpointError
from ocrviz.normalisation import normalisation_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

CLASSES = tuple(f"class {i}" for i in range(19))
PALETTE = [[i, 2 * i, 255 - i] for i in range(19)]
MEAN, STD = [100.0, 110.0, 120.0], [50.0, 55.0, 60.0]          # not ImageNet's: the test sees it read
SHAPE = (64, 128)


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _register_dataset() -> str:
    """A 4-image random dataset, registered as MMSeg's datasets are, so the config names it by type."""
    from mmengine.structures import PixelData
    from mmseg.registry import DATASETS
    from mmseg.structures import SegDataSample

    class OcrvizTinyDataset(torch.utils.data.Dataset):
        metainfo = dict(classes=CLASSES, palette=PALETTE)

        def __init__(self, **kwargs) -> None:
            super().__init__()

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict:
            g = torch.Generator().manual_seed(i)
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(data=torch.randint(0, 19, (1, *SHAPE), generator=g))
            sample.set_metainfo(dict(img_shape=SHAPE, ori_shape=SHAPE, pad_shape=SHAPE))
            return dict(inputs=torch.randint(0, 256, (3, *SHAPE), dtype=torch.uint8, generator=g),
                        data_samples=sample)
    DATASETS.register_module(name="OcrvizTinyDataset", module=OcrvizTinyDataset, force=True)
    return "OcrvizTinyDataset"


@pytest.fixture(scope="module")
def runner_checkpoint(tmp_path_factory):
    """Two real training iterations of MMSeg's OCRNet-HR18 under mmengine's Runner (built from a config,
    as MMSeg's tools/train.py does: Runner.from_cfg), and the iter_2.pth it saved."""
    mmseg, _, Config = import_mmseg()
    from mmengine.runner import Runner

    torch.set_num_threads(1)
    cfg, _ = hr18_model_config(mmseg, Config)
    cfg["data_preprocessor"] = dict(type="SegDataPreProcessor", mean=MEAN, std=STD, bgr_to_rgb=True,
                                    pad_val=0, seg_pad_val=255, size=SHAPE)
    work = tmp_path_factory.mktemp("runner")
    runner = Runner.from_cfg(Config(dict(
        model=cfg, work_dir=str(work), default_scope="mmseg", randomness=dict(seed=0),
        train_dataloader=dict(dataset=dict(type=_register_dataset()), batch_size=2, num_workers=0,
                              collate_fn=dict(type="pseudo_collate"),
                              sampler=dict(type="DefaultSampler", shuffle=False)),
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=2),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01, momentum=0.9)),
        param_scheduler=[dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=2, by_epoch=False)],
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False)))))
    runner.train()
    return runner.model.eval(), work / "iter_2.pth"


def test_weights_only_alone_refuses_the_runners_file(runner_checkpoint):
    _, path = runner_checkpoint
    assert "mmengine.logging.history_buffer.HistoryBuffer" in torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path))
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    full = torch.load(path, weights_only=False)        # our own file: trusted here
    assert {"meta", "state_dict", "message_hub", "optimizer", "param_schedulers"} <= set(full)


def test_the_runners_checkpoint_opens_with_its_classes_and_mmsegs_outputs(runner_checkpoint):
    mm, path = runner_checkpoint
    ours = ocrviz.from_checkpoint(path)
    assert ours.checkpoint_layout == "mmseg" and not ours.training
    assert ours.class_names == list(CLASSES) and ours.palette == [tuple(c) for c in PALETTE]
    assert normalisation_of(ours) == (tuple(MEAN), tuple(STD))    # meta["cfg"] parsed, never run
    x = torch.randn(1, 3, *SHAPE)
    with torch.no_grad():
        mm_low = mm(x, mode="tensor")                               # 1 x 19 x 16 x 32
        mm_full = mm.encode_decode(x, [dict(img_shape=SHAPE)])
        out, cache = ocrviz.run_with_cache(ours, x)
    assert (cache.head_logits - mm_low).abs().max() <= 1e-5
    assert (out - mm_full).abs().max() <= 1e-5
    assert mm_low.std() > 0.1                                       # not a degenerate comparison


@pytest.mark.parametrize("where", ["top level", "meta", "message_hub"])
def test_the_same_file_with_a_code_running_object_is_refused(runner_checkpoint, tmp_path, where):
    _, path = runner_checkpoint
    marker = tmp_path / "PWNED"
    payload = torch.load(path, weights_only=False)
    target = payload if where == "top level" else payload[where.replace(" ", "_")]
    target["evil"] = Evil(marker)
    evil_path = tmp_path / "iter_2_evil.pth"
    torch.save(payload, evil_path)
    with pytest.raises(UnsafeCheckpointError) as info:
        ocrviz.from_checkpoint(evil_path)
    assert "posix.system" in str(info.value) and "never executes pickle code" in str(info.value)
    assert not marker.exists()
    torch.load(evil_path, weights_only=False)                       # control: the payload is live
    assert marker.exists()
