"""The one place a kernel is chosen: `select` maps a call's description to a route name (kernels/__init__.py runs
the route's forward or backward). The torch fallback (unsupported m, float64, CPU without the interpreter) is
decided before, in hlru_lm.ops.

Routes (lanes = B N m, the parallel lanes of the sequential kernels; the thresholds are config.RouteSettings):

    mixer  m   direction  route
    bdlru  1   both       diag_raw (2-byte inputs readable as words, N even), else diag_tile
    bdlru  2   fwd        bdlru_chain
    bdlru  2   bwd        bdlru_tile (logits readable as words), else bdlru_chain
    bdlru  4   both       bdlru_tile (logits readable as words), else bdlru_generic
    bdlru  8   both       bdlru_rows from 8192 lanes; below: bdlru_tile (words), else bdlru_generic
    bdlru  16  both       bdlru_rows
    hlru   1   both       as bdlru m = 1 (order 1 is the m = 1 BD-LRU: logits (N, 2) as (N, 1, 2))
    hlru   2   both       hlru_tile (companion form; logits of a dtype it unpacks), else hlru_seq
    hlru   4   both       as order 2
    hlru   8   both       hlru_lags from 8192 lanes; below: as order 2
    hlru   16  both       hlru_lags

The measurements behind it (H200, B=8 T=8192 D=1536; the vNN are experiments in
`git show d6a9ac2:benchmarks/NOTES.md`): diag_tile's two channels per lane beat the one-channel chain and tile
kernels at m = 1 (v14, v18, v19); the single-pass chain forward is fastest at m = 2
but its backward needs tiles of 4 steps, slower than the two-phase tile backward (v11); the tile kernels' m^3 carry
maps spill at m = 8 and do not fit at 16, where a row per lane in time order wins once 8192 lanes fill the GPU
(v15a, v16b); for H-LRU the same holds for a lane per lag at order 8 and 16 (v17a).

`launch_settings(routes={(mixer, m[, direction]): route})` forces a route (tests, sweeps); a forced route that
cannot take the call (words it cannot read, an m it does not run) raises a ValueError.
"""

from __future__ import annotations

from .config import RouteSettings, forced_routes, settings

# route: (mixer, the m it runs); H-LRU order 1 runs BD-LRU m = 1 routes on reshaped tensors
ROUTE_M = {
    "diag_raw": ("bdlru", (1,)),
    "diag_tile": ("bdlru", (1,)),
    "bdlru_chain": ("bdlru", (2,)),
    "bdlru_tile": ("bdlru", (1, 2, 4, 8)),
    "bdlru_rows": ("bdlru", (4, 8, 16)),
    "bdlru_generic": ("bdlru", (1, 2, 4, 8, 16)),
    "hlru_tile": ("hlru", (2, 4, 8)),
    "hlru_lags": ("hlru", (2, 4, 8, 16)),
    "hlru_seq": ("hlru", (1, 2, 4, 8, 16)),
}
ROUTES = tuple(ROUTE_M)


def _default(mixer: str, m: int, direction: str, lanes: int, words: bool, raw: bool, th: RouteSettings) -> str:
    if m == 1:
        return "diag_raw" if raw else "diag_tile"
    if mixer == "hlru":
        if m == 16 or (m == 8 and lanes >= th.lags_min_lanes):
            return "hlru_lags"
        return "hlru_tile" if words else "hlru_seq"
    if m == 16 or (m == 8 and lanes >= th.rows_min_lanes):
        return "bdlru_rows"
    if m == 2:
        return "bdlru_tile" if direction == "bwd" and words else "bdlru_chain"
    return "bdlru_tile" if words else "bdlru_generic"


def select(
    mixer: str,
    m: int,
    direction: str,
    lanes: int,
    words: bool = True,
    raw: bool = False,
    thresholds: RouteSettings | None = None,
    forced: dict | None = None,
) -> str:
    """The route of a scan call: mixer "bdlru" or "hlru", m (block size or order, in common.SUPPORTED_M), direction
    "fwd" or "bwd", lanes = B N m; words: the tile kernels can read the logits (BD-LRU: aligned words,
    bdlru_tile.tile_words; H-LRU: a dtype they unpack); raw: m = 1 inputs the raw-word kernels can read
    (diag_tile.raw_words). thresholds and forced default to those of the enclosing config.launch_settings."""
    forced = forced_routes() if forced is None else forced
    route = forced.get((mixer, m, direction)) if forced else None
    if route is None:
        return _default(mixer, m, direction, lanes, words, raw, thresholds or settings("route"))
    route_mixer, route_m = ROUTE_M.get(route, ("", ()))
    if route_mixer not in (mixer, "bdlru" if m == 1 else "") or m not in route_m:
        raise ValueError(f"route {route!r} does not run {mixer} at m = {m}")
    if (route == "diag_raw" and not raw) or (route in ("bdlru_tile", "hlru_tile") and not words):
        raise ValueError(f"route {route!r} cannot read these inputs ({mixer}, m = {m}, {direction})")
    return route
