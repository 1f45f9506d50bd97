"""Cache: the tensors one captured forward pass produced, by hook name.

Names are module paths (``head.ocr_distri_head.object_context_block.hook_sim_map``
on ocrviz models; ``<module path>.sim_map`` on foreign module trees, see
``foreign.py``).  Look-ups accept the exact name or a unique dotted suffix, and
a bare role such as ``"sim_map"`` also finds ``...hook_sim_map``:

    >>> logits, cache = run_with_cache(model, x)                   # doctest: +SKIP
    >>> cache["hook_sim_map"] is cache.sim_map                      # doctest: +SKIP
    True
    >>> cache.sim_map.shape, cache.feature_size                     # doctest: +SKIP
    (torch.Size([2, 384, 5]), (16, 24))

Shapes: B batch, C channels, Ck key channels, K regions (= classes),
h x w feature map (HW = h * w), H x W input image.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence

import torch

# Roles the properties expose, in the order a forward pass produces them.
ROLES = ("features", "soft_regions", "pixel_feats", "region_weights", "proxies", "query", "key", "value",
         "sim_map", "context", "object_context", "augmented", "head_logits", "logits")
# Roles whose last two axes are the feature map h x w (used by ``feature_size``).
_GRID_ROLES = ("soft_regions", "region_weights", "pixel_feats", "context", "object_context", "augmented",
               "head_logits", "features")


class CacheKeyError(KeyError):
    """A name or role the cache does not hold (or holds more than once).

    A ``KeyError`` (so ``except KeyError`` works) whose message prints as
    plain text instead of the quoted repr ``KeyError`` normally shows.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CaptureError(RuntimeError):
    """Capture was used in a way it does not support (e.g. a hook fired twice)."""


def _tails(query: str) -> tuple[str, ...]:
    # "sim_map" also means "hook_sim_map"; "x.sim_map" also "x.hook_sim_map".
    head, _, last = query.rpartition(".")
    if last.startswith("hook_"):
        return (query,)
    return (query, f"{head}.hook_{last}" if head else f"hook_{last}")


def name_matches(query: str, name: str) -> bool:
    """True when ``query`` is ``name`` or a dotted suffix of it (``hook_`` optional).

    >>> name_matches("hook_sim_map", "head.ocr_distri_head.object_context_block.hook_sim_map")
    True
    >>> name_matches("context", "head.ocr_distri_head.object_context_block.hook_object_context")
    False
    """
    return any(name == t or name.endswith("." + t) for t in _tails(query))


def resolve(query: str, names: Sequence[str]) -> list[str]:
    """Names that ``query`` selects: the exact name if present, else every suffix match."""
    if query in names:
        return [query]
    return [n for n in names if name_matches(query, n)]


def _listing(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "(none)"


class Cache:
    """Tensors captured in one forward pass, in execution order.

    ``cache[name]`` takes an exact name or a unique suffix; ``cache.names()``
    lists what was captured in the order the forward pass produced it.
    Properties (``sim_map``, ``region_weights``, ...) find the single hook
    playing that role and raise :class:`CacheKeyError` (a ``KeyError``)
    naming the hooks that do exist when the model has none (an ASPP model has
    no ``sim_map``) or several (two OCR heads: use ``cache[name]``).

    Tensors are the model's own tensors (detached unless capture ran with
    ``detach=False``), not copies.  ``cache.input_size`` is the (H, W) of the
    input the forward started from (``ocrviz.context_maps`` maps pixels to
    cells with it) and ``cache.model`` the captured model, whose settings
    (ASPP rates, projection weights, class names) ``cache.module(path)`` reads.
    """

    def __init__(self, available: Sequence[str] = (), model: torch.nn.Module | None = None) -> None:
        self._store: dict[str, torch.Tensor] = {}
        # Every name the capture could have produced, also those a ``names``
        # filter left out; only used to make error messages precise.
        self._available = tuple(available)
        # The captured model (its sites' settings: ASPP rates, projection weights, class names)
        # and the H x W of its input, read when the forward starts; None when unknown.
        self.model = model
        # Records of context modules hooked during capture (``ocrviz/context/sites.py``), one per
        # call, forward order: their factors are in the store, their read functions here.
        self.context_sites: list = []
        self.input_size: tuple[int, int] | None = None

    # -- filling (used by capture.py and foreign.py) -------------------------
    def _add(self, name: str, tensor: torch.Tensor) -> None:
        if name in self._store:
            raise CaptureError(
                f"hook {name!r} fired twice during one capture. A capture holds exactly one forward pass; "
                f"run the model once per `with capture(model)` block (or call run_with_cache once per input), "
                f"or pass names=... that leave out a module the model calls more than once.")
        self._store[name] = tensor

    # -- mapping-like access --------------------------------------------------
    def names(self) -> list[str]:
        """Captured names in forward execution order."""
        return list(self._store)

    keys = names

    def values(self) -> list[torch.Tensor]:
        return list(self._store.values())

    def items(self) -> list[tuple[str, torch.Tensor]]:
        return list(self._store.items())

    def __len__(self) -> int:
        return len(self._store)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._store))

    def __contains__(self, query: object) -> bool:
        return isinstance(query, str) and len(resolve(query, list(self._store))) == 1

    def resolve(self, query: str) -> str:
        """The one captured name ``query`` selects; :class:`CacheKeyError` otherwise."""
        names = list(self._store)
        found = resolve(query, names)
        if len(found) == 1:
            return found[0]
        if found:
            raise CacheKeyError(f"{query!r} is ambiguous: it matches {_listing(found)}; "
                                f"use the full name")
        raise CacheKeyError(self._missing_message(repr(query), query))

    def __getitem__(self, query: str) -> torch.Tensor:
        return self._store[self.resolve(query)]

    def get(self, query: str, default: torch.Tensor | None = None) -> torch.Tensor | None:
        try:
            return self[query]
        except KeyError:
            return default

    def has(self, role: str) -> bool:
        """True when exactly one captured hook plays ``role`` (e.g. ``"sim_map"``)."""
        return role in self

    def _missing_message(self, what: str, query: str) -> str:
        msg = f"{what} is not in this cache. Captured: {_listing(list(self._store))}."
        filtered = [n for n in resolve(query, list(self._available)) if n not in self._store]
        if filtered:
            msg += (f" The model has {_listing(filtered)}, but the names=... filter left it out "
                    f"(or the forward pass did not reach it); capture again including it.")
        else:
            close = difflib.get_close_matches(query, [n.rpartition(".")[2] for n in self._available], n=3)
            if close:
                msg += f" Did you mean {', '.join(repr(c) for c in close)}?"
        return msg

    def _role(self, role: str) -> torch.Tensor:
        found = resolve(role, list(self._store))
        if len(found) == 1:
            return self._store[found[0]]
        if found:
            raise CacheKeyError(f"cache.{role}: several hooks play this role ({_listing(found)}); "
                                f"pick one with cache[name]")
        raise CacheKeyError(self._missing_message(
            f"cache.{role} (a hook named 'hook_{role}' or '{role}')", role)
            + ("" if resolve(role, list(self._available)) else
               f" This model has no {role!r} hook at all (an OCR quantity asked of a non-OCR model?)."))

    # -- roles ------------------------------------------------------------------
    @property
    def features(self) -> torch.Tensor:
        """Backbone output, B x C_in x h x w (``hook_features``)."""
        return self._role("features")

    @property
    def soft_regions(self) -> torch.Tensor:
        """Soft object regions: the aux head's logits, B x K x h x w, no softmax applied."""
        return self._role("soft_regions")

    @property
    def pixel_feats(self) -> torch.Tensor:
        """Pixel representations X (conv3x3_ocr output), B x C x h x w."""
        return self._role("pixel_feats")

    @property
    def region_weights(self) -> torch.Tensor:
        """Spatial softmax of the soft regions, B x K x h x w; each of the K maps sums to 1 over pixels."""
        return self._role("region_weights")

    @property
    def proxies(self) -> torch.Tensor:
        """Object region representations, B x C x K."""
        return self._role("proxies")

    @property
    def query(self) -> torch.Tensor:
        """f_pixel(X), B x HW x Ck."""
        return self._role("query")

    @property
    def key(self) -> torch.Tensor:
        """f_object(proxies), B x Ck x K."""
        return self._role("key")

    @property
    def value(self) -> torch.Tensor:
        """f_down(proxies), B x K x Ck."""
        return self._role("value")

    @property
    def sim_map(self) -> torch.Tensor:
        """Pixel-region relation, B x HW x K; each row sums to 1 over the K regions."""
        return self._role("sim_map")

    @property
    def context(self) -> torch.Tensor:
        """sim_map @ value before f_up, B x Ck x h x w."""
        return self._role("context")

    @property
    def object_context(self) -> torch.Tensor:
        """The object-contextual representation (after f_up), B x C x h x w."""
        return self._role("object_context")

    @property
    def augmented(self) -> torch.Tensor:
        """conv_bn_dropout(cat([object_context, X])), B x C x h x w."""
        return self._role("augmented")

    @property
    def head_logits(self) -> torch.Tensor:
        """Main logits at feature resolution, B x K x h x w."""
        return self._role("head_logits")

    @property
    def logits(self) -> torch.Tensor:
        """Main logits upsampled to the input, B x K x H x W (``hook_logits``)."""
        return self._role("logits")

    @property
    def feature_size(self) -> tuple[int, int]:
        """(h, w) of the feature map the OCR head works on."""
        for role in _GRID_ROLES:
            found = resolve(role, list(self._store))
            if len(found) == 1:
                h, w = self._store[found[0]].shape[-2:]
                return int(h), int(w)
        raise CacheKeyError(f"cache.feature_size needs one of the feature-map hooks "
                            f"({', '.join(_GRID_ROLES)}); captured: {_listing(list(self._store))}")

    def sim_map_grid(self) -> torch.Tensor:
        """The similarity map as K maps over the feature grid, B x K x h x w (a view of ``sim_map``).

        ``sim_map_grid()[b, k]`` shows how strongly every pixel attends to region k.
        """
        sim = self.sim_map                                     # B x HW x K
        h, w = self.feature_size
        if sim.shape[1] != h * w:
            raise ValueError(f"sim_map has {sim.shape[1]} pixels but the feature map is {h} x {w} = {h * w}; "
                             f"the cache mixes tensors from different resolutions")
        return sim.transpose(1, 2).unflatten(2, (h, w))        # B x K x h x w

    def module(self, path: str) -> torch.nn.Module:
        """The captured model's submodule at ``path`` ("" = the model): a site's settings.

        Raises ``ValueError`` when the cache was not filled by ``capture`` (no model known).
        """
        if self.model is None:
            raise ValueError(f"this cache does not know its model, so the settings of {path or '<model>'} "
                             f"cannot be read; build it with ocrviz.run_with_cache(model, x) or ocrviz.capture(model)")
        return self.model.get_submodule(path)

    def __repr__(self) -> str:
        rows = [f"  {n}: {tuple(t.shape)}" for n, t in self._store.items()]
        return "Cache(\n" + "\n".join(rows) + "\n)" if rows else "Cache(empty)"
