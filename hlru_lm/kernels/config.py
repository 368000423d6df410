"""Launch settings of the Triton kernels as data: frozen dataclasses holding the measured defaults (H200, B=8 T=8192
D=1536; benchmarks/NOTES.md), keyed by (family, m, direction[, variant]), and one override for tests and sweeps.

Families and their settings class (one entry per m and direction "fwd" / "bwd"):
  diag      DiagSettings     m = 1, diag_tile.py; variant "raw" (the raw-word kernels) or "prefix"
  chain     ChainSettings    m = 2, bdlru_chain.py
  tile      TileSettings     m = 1, 2, 4, 8, bdlru_tile.py; variant "bdlru" or "hlru" (the companion form, m = 2, 4, 8)
  rows      RowsSettings     m = 4, 8, 16, bdlru_rows.py
  lags      LagsSettings     m = 2, 4, 8, 16, hlru_lags.py
  generic   GenericSettings  every m, bdlru_generic.py
  route     RouteSettings    the router's thresholds (one entry, no m or direction)

`settings(family, m, direction, variant)` returns the entry in force: the defaults, or what an enclosing
`launch_settings` put in their place. The override takes keyword arguments named `family`, `family_fwd` or
`family_bwd`, each a dict of field values; the family-wide ones apply first, to every m and variant, then the
direction's. `routes` forces the router's choice per (mixer, m[, direction]) (see router.select):

    with launch_settings(tile_fwd=dict(bt=16), tile_bwd=dict(bt=8), tile=dict(warps=1, agg_only=True)):
        ...  # every tile kernel launched in here: BT 16 forward, 8 backward, one warp, maps composed
    with launch_settings(routes={("bdlru", 4): "bdlru_generic"}):
        ...  # BD-LRU at m = 4 on the generic kernels, forward and backward

Values are checked on entry; an entry that fails raises a ValueError naming the family, m, direction and field when
a kernel launches with it. Overrides nest; the table in
force is process-wide (every thread, the autograd engine's included), and a lookup costs one dict access (no
environment reads on the launch path).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

DIRECTIONS = ("fwd", "bwd")


def _pow2(name: str, val: int) -> None:
    if val < 1 or val & (val - 1):
        raise ValueError(f"{name}={val} must be a power of two")


def _maxnreg(name: str, val: int | None) -> None:
    if val is not None and val != 0 and not 32 <= val <= 255:
        raise ValueError(f"{name}={val} must be 0 (no cap) or a register count from 32 to 255")


def _evict(name: str, val: int) -> None:
    if val not in (0, 1, 2):
        raise ValueError(f"{name}={val} must be 0, 1 or 2")


@dataclass(frozen=True)
class DiagSettings:
    """diag_tile.py (m = 1). bt: time steps per tile; vec: channels per lane (the raw-word kernels always take 2);
    warps; unroll: the prefix backward's steps per loop iteration; evict: the prefix backward's L2 hints (0 none,
    1 evict_first on the last use, 2 and evict_last on phase 1's loads); fast: the forward's short rcp / exp2 forms;
    maxnreg: the forward's register cap (0: none); agg_only (tests): only a chain's first tile publishes its end
    state, so every look-back composes maps."""

    bt: int
    vec: int = 2
    warps: int = 4
    unroll: int = 1
    evict: int = 2
    fast: bool = True
    maxnreg: int = 0
    agg_only: bool = False

    def check(self, m: int) -> None:
        for name in ("bt", "vec", "warps", "unroll"):
            _pow2(name, getattr(self, name))
        _evict("evict", self.evict)
        _maxnreg("maxnreg", self.maxnreg)


@dataclass(frozen=True)
class ChainSettings:
    """bdlru_chain.py (m = 2). bt: time steps per tile (in registers); warps; words (forward): 0 element
    loads, 1 logits as 32-bit words, 2 also v and h (each only where the tensors allow it); maxnreg: the forward's
    register cap, None: 128 where 2 words are read, else none; agg_only as DiagSettings."""

    bt: int
    warps: int
    words: int = 2
    maxnreg: int | None = None
    agg_only: bool = False

    def check(self, m: int) -> None:
        _pow2("bt", self.bt)
        _pow2("warps", self.warps)
        if self.words not in (0, 1, 2):
            raise ValueError(f"words={self.words} must be 0, 1 or 2")
        _maxnreg("maxnreg", self.maxnreg)


@dataclass(frozen=True)
class TileSettings:
    """bdlru_tile.py. bt: time steps per tile; warps (32 blocks each); unroll: steps per loop iteration; rev: phase 1
    runs the steps in the opposite order to phase 2; evict: L2 hints as DiagSettings; coal (BD-LRU): logit words
    read and written coalesced through shared memory; maxnreg (0: none); agg_only as DiagSettings."""

    bt: int
    warps: int
    unroll: int
    rev: bool = False
    evict: int = 0
    coal: bool = False
    maxnreg: int = 0
    agg_only: bool = False

    def check(self, m: int) -> None:
        for name in ("bt", "warps", "unroll"):
            _pow2(name, getattr(self, name))
        _evict("evict", self.evict)
        _maxnreg("maxnreg", self.maxnreg)


@dataclass(frozen=True)
class RowsSettings:
    """bdlru_rows.py. unroll: steps per loaded group; parts: lanes per row (each m / parts columns); pf: L2 prefetch
    distance in steps (0: none); words: 2-byte logits read as 32-bit words where aligned; fast: short rcp / exp2."""

    unroll: int
    parts: int = 1
    pf: int = 32
    words: bool = True
    fast: bool = True

    def check(self, m: int) -> None:
        _pow2("unroll", self.unroll)
        if self.pf < 0:
            raise ValueError(f"pf={self.pf} must be 0 (no L2 prefetch) or a positive number of steps")
        p = self.parts
        if p < 1 or p & (p - 1) or m * p > 32 or m // p < 2:
            raise ValueError(f"parts={p} at m = {m}: needs a power of two with m parts <= 32 and m / parts >= 2")


@dataclass(frozen=True)
class LagsSettings:
    """hlru_lags.py. unroll, pf, fast as RowsSettings."""

    unroll: int
    pf: int = 32
    fast: bool = True

    def check(self, m: int) -> None:
        _pow2("unroll", self.unroll)
        if self.pf < 0:
            raise ValueError(f"pf={self.pf} must be 0 (no L2 prefetch) or a positive number of steps")


@dataclass(frozen=True)
class GenericSettings:
    """bdlru_generic.py. tile_elems: m m BN elements of A per program and step; unroll; target_programs (None: 16
    per SM in the scalar layout, else 4); min_chunk: the shortest chunk; chunk_max_m: above it one chunk (the chunk
    map costs m^3 per step); chunk: a fixed chunk length (0: from target_programs); warps (None: from the tile);
    scalar: the scalar layout of common._tile_offsets."""

    tile_elems: int
    scalar: bool
    unroll: int = 2
    target_programs: int | None = None
    min_chunk: int = 64
    chunk_max_m: int = 4
    chunk: int = 0
    warps: int | None = None

    def check(self, m: int) -> None:
        if self.chunk < 0 or self.min_chunk < 1 or self.unroll < 1:
            raise ValueError(f"chunk={self.chunk}, min_chunk={self.min_chunk}, unroll={self.unroll} out of range")


@dataclass(frozen=True)
class RouteSettings:
    """The router's thresholds: B N m lanes from which BD-LRU m = 8 runs on bdlru_rows.py and H-LRU order 8 on
    hlru_lags.py (below them too few warps are resident to beat the time-parallel tile kernels)."""

    rows_min_lanes: int = 8192
    lags_min_lanes: int = 8192

    def check(self, m: int) -> None:
        pass


Settings = DiagSettings | ChainSettings | TileSettings | RowsSettings | LagsSettings | GenericSettings | RouteSettings
Key = tuple[str, int, str, str]


def _defaults() -> dict[Key, Settings]:
    d: dict[Key, Settings] = {}
    # diag_tile.py: NOTES v14, v18e, v19a-b. Register caps: the prefix forward 96 (5 programs per SM instead of 3,
    # for 64 B of spills, v14d); the raw-word forward at BT 32 128 (4 programs of 4 warps instead of 3, v18e)
    d["diag", 1, "fwd", "prefix"] = DiagSettings(bt=16, maxnreg=96)
    d["diag", 1, "bwd", "prefix"] = DiagSettings(bt=16, unroll=2)
    d["diag", 1, "fwd", "raw"] = DiagSettings(bt=32, maxnreg=128)
    d["diag", 1, "bwd", "raw"] = DiagSettings(bt=16)
    # bdlru_chain.py: the best spill-free tiles (NOTES); words and cap v17b/c
    d["chain", 2, "fwd", ""] = ChainSettings(bt=16, warps=2)
    d["chain", 2, "bwd", ""] = ChainSettings(bt=4, warps=2)
    # bdlru_tile.py: m: (forward BT, backward BT, warps, unroll), NOTES v11, v13 (m = 1, 2 backward BT 16, m = 4
    # unroll 1); H-LRU orders their own (order 4: unroll 4, v13g). m = 8 spills and is still faster than the generic
    # kernels. (m, direction, variant): (rev, evict) where they measured faster (v13b-g), phase 2's re-reads missing L2
    tile = {"bdlru": {1: (32, 16, 8, 2), 2: (32, 16, 2, 2), 4: (64, 32, 2, 1), 8: (64, 32, 1, 1)},
            "hlru": {2: (32, 32, 2, 2), 4: (64, 32, 2, 4), 8: (64, 32, 1, 1)}}  # fmt: skip
    cache_order = {(4, "fwd", "bdlru"): (True, 2), (1, "bwd", "bdlru"): (True, 1), (2, "bwd", "bdlru"): (True, 1)}
    cache_order.update({(2, "fwd", "hlru"): (True, 2), (2, "bwd", "hlru"): (True, 2), (4, "bwd", "hlru"): (True, 2)})
    for variant, per_m in tile.items():
        for m, (bt_fwd, bt_bwd, warps, unroll) in per_m.items():
            for direction, bt in (("fwd", bt_fwd), ("bwd", bt_bwd)):
                rev, evict = cache_order.get((m, direction, variant), (False, 0))
                coal = variant == "bdlru" and m >= 8  # v12b
                d["tile", m, direction, variant] = TileSettings(bt, warps, unroll, rev, evict, coal)
    # bdlru_rows.py: unroll v16b; parts v16c (forward: m = 16 1.72 ms at 2 lanes per row against 1.91 at 1), v16e
    # (backward: m = 16 4.54 against 7.15)
    for m, (u_fwd, u_bwd, parts) in {4: (16, 8, 1), 8: (8, 4, 1), 16: (8, 2, 2)}.items():
        d["rows", m, "fwd", ""] = RowsSettings(unroll=u_fwd, parts=parts)
        d["rows", m, "bwd", ""] = RowsSettings(unroll=u_bwd, parts=parts)
    # hlru_lags.py: v17a (order 16: unroll 8 1.07 ms, 4 1.24; 16 needs 248 registers)
    for m in (2, 4, 8, 16):
        d["lags", m, "fwd", ""] = LagsSettings(unroll=8)
        d["lags", m, "bwd", ""] = LagsSettings(unroll=4)
    # bdlru_generic.py: v3 (m = 4: 512 elements per tile faster than 1024), v9 (the scalar layout up to m = 8)
    for m in (1, 2, 4, 8, 16):
        for direction in DIRECTIONS:
            elems = 512 if (direction == "bwd" or m >= 4) else 1024
            d["generic", m, direction, ""] = GenericSettings(tile_elems=elems, scalar=m <= 8)
    d["route", 0, "", ""] = RouteSettings()
    return d


DEFAULTS: Mapping[Key, Settings] = _defaults()
# (table, forced routes) in force. Process-wide, not a context variable: the autograd engine runs CUDA backwards on
# its own threads, which would not see a context variable set around .backward().
_ACTIVE: tuple[Mapping[Key, Settings], Mapping] = (DEFAULTS, {})
# the open launch_settings blocks, innermost last: a block that exits removes its own entry, so blocks that end out of
# order (threads, interleaved generators) still leave the defaults once all have ended
_OPEN: list[tuple[object, tuple[Mapping[Key, Settings], Mapping]]] = []


class _Invalid:
    """An overridden entry that failed its check: raised when a kernel asks for it, so an override that is bad for
    one m only (rows parts=4 is fine at m = 8, not at 16) stops only the launches at that m."""

    def __init__(self, exc: ValueError) -> None:
        self.exc = exc


def settings(family: str, m: int = 0, direction: str = "", variant: str = "") -> Settings:
    """The entry in force for (family, m, direction, variant); a KeyError for a combination no kernel runs."""
    entry = _ACTIVE[0][family, m, direction, variant]
    if type(entry) is _Invalid:
        raise entry.exc
    return entry


def forced_routes() -> Mapping:
    """{(mixer, m, direction): route} forced by the enclosing launch_settings (empty by default)."""
    return _ACTIVE[1]


@contextlib.contextmanager
def launch_settings(routes: Mapping | None = None, **overrides: Mapping) -> Iterator[None]:
    """Override launch settings (and optionally routes) inside the block; see the module docstring."""
    global _ACTIVE
    base, forced = _ACTIVE
    table = dict(base)
    families = {k[0] for k in table}
    for order in (0, 1):  # family-wide first, then per direction
        for name, fields in overrides.items():
            family, _, direction = name.rpartition("_") if name.endswith(("_fwd", "_bwd")) else (name, "", "")
            if family not in families:
                raise ValueError(f"launch_settings: unknown family {name!r} (known: {sorted(families)})")
            if (direction != "") != bool(order):
                continue
            for key, entry in table.items():
                if key[0] == family and direction in ("", key[2]) and type(entry) is not _Invalid:
                    try:
                        table[key] = dataclasses.replace(entry, **fields)
                    except TypeError as exc:
                        raise ValueError(f"launch_settings {name}: {exc}") from None
    for key, entry in table.items():
        if entry is not base[key] and type(entry) is not _Invalid:
            try:
                entry.check(key[1])
            except ValueError as exc:
                table[key] = _Invalid(ValueError(f"launch settings {key[0]} m={key[1]} {key[2]}: {exc}"))
    if routes:
        forced = dict(forced)
        for key, route in routes.items():
            _check_route_key(key, route)
            for direction in DIRECTIONS if len(key) == 2 else (key[2],):
                forced[key[0], key[1], direction] = route
    token = object()
    _OPEN.append((token, (table, forced)))
    _ACTIVE = (table, forced)
    try:
        yield
    finally:
        _OPEN[:] = [entry for entry in _OPEN if entry[0] is not token]
        _ACTIVE = _OPEN[-1][1] if _OPEN else (DEFAULTS, {})


def _check_route_key(key, route) -> None:
    """A forced route's key is (mixer, m) or (mixer, m, direction) that some call looks up, its route a known one."""
    from .common import SUPPORTED_M
    from .router import ROUTES

    ok = (
        isinstance(key, tuple)
        and len(key) in (2, 3)
        and key[0] in ("bdlru", "hlru")
        and key[1] in SUPPORTED_M
        and (len(key) == 2 or key[2] in DIRECTIONS)
    )
    if not ok:
        raise ValueError(
            f"launch_settings routes: key {key!r} is not (mixer, m[, direction]) with mixer bdlru or hlru, m in "
            f"{SUPPORTED_M} and direction in {DIRECTIONS}"
        )
    if route not in ROUTES:
        raise ValueError(f"launch_settings routes: unknown route {route!r} (known: {', '.join(ROUTES)})")
