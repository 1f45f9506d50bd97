"""ToyCity's pixels are pinned: the shipped models were trained on these scenes
and the notebooks and tests quote numbers measured on them, so a faster
renderer must give the same arrays, byte for byte.  The digests were computed
with the renderer as it was when the models were trained (before the
render speed-ups of issue 11)."""
from __future__ import annotations

import hashlib

import pytest

from ocrviz.data.dataset import ToyCityDataset
from ocrviz.data.toycity import make_scene

# (seed, height, width, {array: (dtype, sha256 of its bytes)}); train seeds and validation seeds.
DIGESTS = [
    (0, 256, 512, {
        "image": ("uint8", "3ea17c646dd2dc196ccb1bfd65c12e3ca683f8179faa20be3bf89d727b188516"),
        "labels": ("int64", "1e4e00d5ba34b8ed97b4963d7b1eff3912404366b10ddc6795b714c5a410cd7e"),
        "instances": ("int32", "e785b15c77727d58a3a5437f639984b7d3de799158ff0b07d37b9637c4237cec"),
        "ambiguous": ("bool", "bef2282d5be785754dee0184d97bc4849c1bbeb4d20dcddb2cd1aa003b6d53a0"),
        "ambiguity": ("uint8", "f22965d6882bb98e8e156904ac347d151d2bf77893a49f459db5f72858fdf9bb"),
        "cue_free": ("bool", "fa43239bcee7b97ca62f007cc68487560a39e19f74f3dde7486db3f98df8e471"),
    }),
    (7, 256, 512, {
        "image": ("uint8", "6ddcbd66f7e77d39cfdafc579a84b1aeb76d1d896c82962478457b4eef01607c"),
        "labels": ("int64", "bd6c763043c533c8af12e9ed7fc171a2593e0d077a04f0178e78c941475aba15"),
        "instances": ("int32", "8b358ab1e2df94c3a364d568313d975803a5b1334d6c552446811e3b55fb1754"),
        "ambiguous": ("bool", "cdd7cbf7094f4b3f5768133a800dfa64ca6b4132f979b409406d386d20ffb06e"),
        "ambiguity": ("uint8", "e68309abd3039e8952dd298d14c1d9f24041cbd5df5928aac95fc484802687b0"),
        "cue_free": ("bool", "7883b53838848bbab9dd4191be838466f813149c993576adc6d799bdeb2f3f75"),
    }),
    (30, 256, 512, {
        "image": ("uint8", "e0816142c5827c2783fc27c0a579c0acab996c812844fe0ca7f8505e351f763c"),
        "labels": ("int64", "95daf54829318ef5dc692fb565da69350369625b6480503181bdd90b1ef6fb8c"),
        "instances": ("int32", "4fc646baaacc54af2106fd2bce37199c978663b2e45cfd6bb93c20072358d538"),
        "ambiguous": ("bool", "2b04e3f0d4430b9b94b1021b2702d65987c4bbb0747ab6019c8aae19104796f5"),
        "ambiguity": ("uint8", "f29a8150ca9e854fa8eaf41eb15ee349c4329033048b7e6d7357c41759e42c9f"),
        "cue_free": ("bool", "580d94dec25026128a6c8561273109367909dc42275e6591dc62cd3d787ac62a"),
    }),
    (424242, 256, 512, {
        "image": ("uint8", "2f2c4159fd991d69463a26c7457c0d62edaf50dd1cf465ccbf5ade977f3d33a2"),
        "labels": ("int64", "376fc67fd2cc6eeb8ff9231ca5c5460a3cf88c9ada742f73dda022795fd6a36e"),
        "instances": ("int32", "76ce50c74ee807f6cdb0a06718e3594a1724514de5642325dc2c16b12209c14f"),
        "ambiguous": ("bool", "7b309034092e34e4d967032d6f26a455b4d2f6ccc71f399997886447985eb5ce"),
        "ambiguity": ("uint8", "241eb7ea8c7cb7a37ca5d491a7263a579429aaec23b641b3840ad9d1eee1d4d6"),
        "cue_free": ("bool", "cd5b8e57058fafead796796acf924339a18ab0589c04d71540d52bc656a509d1"),
    }),
    (10000000, 256, 512, {
        "image": ("uint8", "c48d472bdaa47482f694ad80bd2da5cfbbf7550038c32ee4f11f12f0824dc908"),
        "labels": ("int64", "f19601bc6e58ddc1a1dea3575fc2d7189b6433ca3d9a3bb2344cd4980fcd0ab6"),
        "instances": ("int32", "e807d86fd66ee4bc21fad3a6d3be41ef2966eafd5f85bed1e901fbabe31c0331"),
        "ambiguous": ("bool", "90886562d5ad10f4848680bd7cc256ffd501574c8922c4cc2e3ad55654a34827"),
        "ambiguity": ("uint8", "bb5eaa686de600b6d4dada416f6bdfe5d66450d224ca570725b7575a7c41465d"),
        "cue_free": ("bool", "1e5c1218c05f9eada31491cd67081accfea209780e7df16023c3e75cd8915cb7"),
    }),
    (10000031, 256, 512, {
        "image": ("uint8", "6206ef81d9a8f475300ebfdbca18ae37c2e84fe0c382556322ebe3a8275fda73"),
        "labels": ("int64", "8a9b2b7eda045c538bbadb602f7d85820ab721737bb702e39caa9681071b1bcd"),
        "instances": ("int32", "b74b38e15ad3c633f3283ce59c3b2b9222649b413efa6bd87a8e72f06b932350"),
        "ambiguous": ("bool", "7e9d77712ddaf053be76d62f2c9da13872aa4f9ca5ac6ee82055ce8ce52a1e75"),
        "ambiguity": ("uint8", "b0a2c0135a868e4d5faf61b2c67462e02774f6f2c58d4e42e2442d89bc5d9d13"),
        "cue_free": ("bool", "fa43239bcee7b97ca62f007cc68487560a39e19f74f3dde7486db3f98df8e471"),
    }),
    (10000005, 128, 256, {
        "image": ("uint8", "509209ebf0b64328a730dab66ed0fd71c010d7999890a7ddefdd3af5c72c01cc"),
        "labels": ("int64", "0b6f245e1aac280960b67eae8800d0921d3319d7c025145291cec441806d6e0c"),
        "instances": ("int32", "9cd8f8053bc393ce5a407e8a242b5ccae58d637197017c3542379f5d9b026248"),
        "ambiguous": ("bool", "a1b303f8c7ab9b9fefd2633bcaf84c5a6c1afc6f0b7cd3e837c54b907fe89295"),
        "ambiguity": ("uint8", "95cb1e75c0afeee15b8c62e45c97952a616ec4d598487556e7862f23bc945658"),
        "cue_free": ("bool", "5dd2941ef138741fd963cac4ae4ca4c976a31a45b111d21477ac667360ab35bf"),
    }),
]


@pytest.mark.parametrize("seed, height, width, digests", DIGESTS, ids=[f"{d[0]}@{d[1]}x{d[2]}" for d in DIGESTS])
def test_scene_and_item_arrays_are_unchanged(seed, height, width, digests) -> None:
    item = ToyCityDataset([seed], height=height, width=width)[0]
    arrays = {"image": make_scene(seed, height, width).image}
    arrays.update({key: item[key].numpy() for key in digests if key != "image"})
    for key, (dtype, digest) in digests.items():
        a = arrays[key]
        assert (str(a.dtype), a.shape) == (dtype, (height, width) + ((3,) if key == "image" else ())), key
        assert hashlib.sha256(a.tobytes()).hexdigest() == digest, f"seed {seed} {key}: pixels changed"
