"""Offline compile report for the Triton kernels (no GPU needed): layouts, shuffles, registers and spills on sm_90.

Compiles with the Triton of the device image (3.6) installed beside the CPU venv, e.g.
    pip install --target /tmp/tr36 triton==3.6.0
    PYTHONPATH=/tmp/tr36:. python benchmarks/experiments/compile_report.py chain-fwd,1,32,128,4 generic-fwd,4,32,1
Specs: chain-fwd|chain-bwd,M,BT,BN,WARPS (chain-fwd: [,WORDS[,MAXNREG]]; bdlru_chain.py),
tile-fwd|tile-bwd,M,BT,WARPS,UNROLL[,MAXNREG] (bdlru_tile.py; hlru-tile-fwd|hlru-tile-bwd: its H-LRU form; env
HLRU_TILE_COAL_M, _REV, _EVICT as at run time), diag-fwd,BT,VEC,WARPS and diag-bwd,BT,VEC,WARPS,UNROLL
(diag_tile.py; env HLRU_DIAG_FAST, _EVICT, _MAXNREG, _RAW, _RAW_BWD as at run time),
generic-fwd|generic-bwd|generic-map,M,BN,WARPS (bdlru.py), rows-fwd|rows-bwd,M,U[,WORDS] (bdlru_rows.py; env
HLRU_ROWS_FAST, HLRU_ROWS_PF, HLRU_ROWS_PARTS / _PARTS_BWD),
lags-fwd|lags-bwd,M,U (hlru_lags.py; env HLRU_LAGS_PF).
Pointer and N arguments get the divisibility-16 specialisation the runtime gives them, except the ones the kernels
opt out of. Prints cuobjdump's REG/STACK/SHARED, PTX instruction counts and the TTGIR blocked layouts; SASS=1 adds
a static SASS opcode histogram and the instruction count of each loop body (a runtime step loop: UNROLL steps).
"""

import os
import re
import subprocess
import sys

import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from hlru_lm.kernels import bdlru, bdlru_chain, bdlru_rows, bdlru_tile, diag_tile, hlru_lags

P, F, I32 = "*bf16", "*fp32", "*i32"
CHAIN_FWD = dict(z_ptr=P, v_ptr=P, h0_ptr=F, h_ptr=P, final_ptr=F, flag_ptr=I32, agg_ptr=F, inc_ptr=F)
CHAIN_BWD = dict(z_ptr=P, v_ptr=P, h_ptr=P, h0_ptr=F, g_ptr=P, dfinal_ptr=F, dz_ptr=P, dv_ptr=P, dh0_ptr=F)
CHAIN_BWD.update(flag_ptr=I32, agg_ptr=F, inc_ptr=F)
CHAIN_INTS = dict(B="i32", T="i32", N="i32", NT="i32", NTT="i32")
GEN_INTS = dict(T="i32", N="i32", NT="i32", NC="i32", CL="i32", ONE="i32")
NO_ALIGN = {"v_ptr", "h_ptr", "g_ptr", "dv_ptr", "ONE", "B", "T", "NT", "NTT", "NC", "CL"}


def report(fn, sig: dict, consts: dict, warps: int, label: str, maxnreg: int | None = None, no_align=NO_ALIGN) -> None:
    attrs = {(i,): [["tt.divisibility", 16]] for i, k in enumerate(sig) if k not in no_align}
    src = ASTSource(fn, signature={**sig, **{k: "constexpr" for k in consts}}, constexprs=consts, attrs=attrs)
    c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps, "maxnreg": maxnreg})
    path = "/tmp/compile_report.cubin"
    with open(path, "wb") as fh:
        fh.write(c.asm["cubin"])
    cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    usage = subprocess.run([cuobjdump, "--dump-resource-usage", path], capture_output=True, text=True).stdout
    res = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", usage)
    counts = {
        k: len(re.findall(p, c.asm["ptx"]))
        for k, p in dict(shfl=r"shfl\.sync", bar=r"bar\.sync", ld_shared=r"ld\.shared", ld_global=r"ld\.global").items()
    }
    print(f"{label}: REG/STACK/SHARED {res.groups() if res else '?'} {counts}")
    if os.environ.get("SASS"):  # SASS opcode histogram (static counts over the whole kernel)
        sass = subprocess.run([cuobjdump, "-sass", path], capture_output=True, text=True).stdout
        ops = re.findall(r"^\s+/\*[0-9a-f]{4,5}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)(?:\.[\w.]+)?", sass, re.M)
        hist = {op: ops.count(op) for op in sorted(set(ops), key=ops.count, reverse=True)}
        print(f"    SASS {len(ops)} instructions: {hist}")
        # loop bodies: a branch back to a lower address closes a loop of (source - target) / 16 instructions
        loops = [
            (int(src, 16) - int(dst, 16)) // 16 + 1
            for src, dst in re.findall(r"/\*([0-9a-f]{4,5})\*/\s+(?:@!?P\w+\s+)?BRA 0x([0-9a-f]+)", sass)
            if int(dst, 16) < int(src, 16)
        ]
        print(f"    loop bodies (instructions): {loops}")
    for line in re.findall(r"^#\w+ = (#ttg\.blocked.*)$", c.asm["ttgir"], re.M):
        print("   ", line[:130])


def main() -> None:
    for spec in sys.argv[1:]:
        kind, *nums = spec.split(",")
        nums = [int(x) for x in nums]
        if kind in ("chain-fwd", "chain-bwd"):
            m, bt, bn, warps, words, maxnreg = (nums + [0, 0])[:6]
            consts = dict(M=m, BT=bt, BN=bn, NORM=0, AGG_ONLY=0)
            if kind == "chain-fwd":
                consts.update(WORDS=words, DT=0)
                sig = {**CHAIN_FWD, **CHAIN_INTS}
                report(bdlru_chain._bdlru_chain_fwd_kernel, sig, consts, warps, spec, maxnreg=maxnreg or None)
            else:
                consts["HAS_G"] = True
                report(bdlru_chain._bdlru_chain_bwd_kernel, {**CHAIN_BWD, **CHAIN_INTS}, consts, warps, spec)
        elif kind in ("generic-fwd", "generic-bwd", "generic-map"):
            m, bn, warps = nums
            consts = dict(M=m, BN=bn, NORM=0, UNROLL=2, SCALAR=bdlru.scalar_layout(m))
            if kind == "generic-fwd":
                sig = dict(z_ptr=P, v_ptr=P, start_ptr=F, h_ptr=P, final_ptr=F)
                report(bdlru._bdlru_fwd_kernel, {**sig, **GEN_INTS}, consts, warps, spec)
            elif kind == "generic-map":
                sig = dict(z_ptr=P, v_ptr=P, e_ptr=F, mat_ptr=F)
                report(bdlru._bdlru_chunk_fwd_kernel, {**sig, **GEN_INTS}, consts, warps, spec)
            else:
                sig = dict(z_ptr=P, v_ptr=P, h_ptr=P, h0_ptr=F, g_ptr=P, carry_ptr=F, dz_ptr=P, dv_ptr=P, dh0_ptr=F)
                report(bdlru._bdlru_bwd_kernel, {**sig, **GEN_INTS}, {**consts, "HAS_G": True}, warps, spec)
        elif kind in ("tile-fwd", "tile-bwd", "hlru-tile-fwd", "hlru-tile-bwd"):
            m, bt, warps, unroll, *maxnreg = nums
            hlru = kind.startswith("hlru")
            word = bdlru_tile._word_bytes(m, torch.bfloat16)
            wb = m * (m + 1) * 2 // word
            wl = 1 << (wb.bit_length() - 1)
            consts = dict(M=m, BT=bt, BN=32 * warps, WB=wb, WL=wl, WH=triton.next_power_of_2(max(1, wb - wl)))
            consts.update(EPW=word // 2, WORD=8 * word, COAL=m >= int(os.environ.get("HLRU_TILE_COAL_M", 8)))
            if hlru:
                consts.update(WB=0, WL=1, WH=1, EPW=1, WORD=0, COAL=False)
            consts.update(DT=0, NORM=0, UNROLL=unroll, HLRU=hlru, REV=os.environ.get("HLRU_TILE_REV") == "1")
            evict = int(os.environ.get("HLRU_TILE_EVICT") or 0)  # as bdlru_tile._launch_args
            consts.update(EV1="evict_last" if evict == 2 else "", EV2="evict_first" if evict else "")
            consts["EVS"] = consts["EV2"]
            if kind.endswith("fwd"):
                consts["AGG_ONLY"] = 0
                sig = {**CHAIN_FWD, **CHAIN_INTS, "ONE": "i32"}
                report(bdlru_tile._bdlru_tile_fwd_kernel, sig, consts, warps, spec, *maxnreg)
            else:
                consts.update(HAS_G=True, AGG_ONLY=0)
                sig = {**CHAIN_BWD, **CHAIN_INTS, "ONE": "i32"}
                report(bdlru_tile._bdlru_tile_bwd_kernel, sig, consts, warps, spec, *maxnreg)
        elif kind in ("diag-fwd", "diag-bwd"):
            if len(nums) != (3 if kind == "diag-fwd" else 4):
                sys.exit(f"{spec!r}: diag-fwd takes BT,VEC,WARPS and diag-bwd BT,VEC,WARPS,UNROLL")
            bt, vec, warps, *unroll = nums
            consts = dict(BT=bt, BC=32 * warps * vec, NORM=0, AGG_ONLY=0)
            no_align = {"B", "T", "NT", "NTT"}  # the kernels' tensors and N keep their alignment specialisation
            if kind == "diag-fwd":
                fast = os.environ.get("HLRU_DIAG_FAST") != "0"  # as diag_tile._launch_args
                raw = os.environ.get("HLRU_DIAG_RAW") != "0"
                maxnreg = int(os.environ.get("HLRU_DIAG_MAXNREG") or diag_tile._FWD_MAXNREG[raw]) or None
                if raw:  # VEC is 2 there
                    consts = dict(BT=bt, BP=32 * warps, NORM=0, AGG_ONLY=0, FAST=fast, DT=0)
                    no_align |= {"v_ptr", "h_ptr"}
                    fn = diag_tile._diag_raw_fwd_kernel
                else:
                    consts.update(VEC=vec, FAST=fast)
                    fn = diag_tile._diag_fwd_kernel
                report(fn, {**CHAIN_FWD, **CHAIN_INTS}, consts, warps, spec, maxnreg, no_align)
            elif os.environ.get("HLRU_DIAG_RAW_BWD") != "0":  # the raw-word backward (VEC 2, UNROLL unused)
                consts = dict(BT=bt, BP=32 * warps, NORM=0, HAS_G=True, AGG_ONLY=0, DT=0)
                no_align |= {"v_ptr", "h_ptr", "g_ptr", "dv_ptr"}
                report(diag_tile._diag_raw_bwd_kernel, {**CHAIN_BWD, **CHAIN_INTS}, consts, warps, spec, None, no_align)
            else:
                evict = int(os.environ.get("HLRU_DIAG_EVICT") or 2)  # as diag_tile._launch_args
                consts.update(HAS_G=True, UNROLL=unroll[0], EV1="evict_last" if evict == 2 else "")
                consts.update(EV2="evict_first" if evict else "", EVS="evict_first" if evict else "")
                report(diag_tile._diag_bwd_kernel, {**CHAIN_BWD, **CHAIN_INTS}, consts, warps, spec, None, no_align)
        elif kind in ("rows-fwd", "rows-bwd"):
            if len(nums) not in (2, 3):
                sys.exit(f"{spec!r}: {kind} takes M,U[,WORDS]")
            m, unroll, *words = nums
            words = bool(words[0]) if words else True
            consts = dict(M=m, U=unroll, PF=int(os.environ.get("HLRU_ROWS_PF") or 32), NORM=0, WORDS=words, DT=0)
            consts["FAST"] = os.environ.get("HLRU_ROWS_FAST") != "0"
            zw = "*i32" if words else P
            ints = dict(T="i32", N="i32", NR="i32")
            if kind == "rows-fwd":
                sig = dict(zw_ptr=zw, v_ptr=P, h0_ptr=F, h_ptr=P, final_ptr=F, **ints)
                consts["P"] = int(os.environ.get("HLRU_ROWS_PARTS") or 1)
                report(bdlru_rows._rows_fwd_kernel, sig, consts, 1, spec, None, {"T", "NR"})
            else:
                sig = dict(zw_ptr=zw, v_ptr=P, h_ptr=P, h0_ptr=F, g_ptr=P, dfinal_ptr=F, dz_ptr=P, dv_ptr=P)
                sig.update(dh0_ptr=F, **ints)
                consts["P"] = int(os.environ.get("HLRU_ROWS_PARTS_BWD") or 1)
                report(bdlru_rows._rows_bwd_kernel, sig, {**consts, "HAS_G": True}, 1, spec, None, {"T", "NR"})
        elif kind in ("lags-fwd", "lags-bwd"):
            if len(nums) != 2:
                sys.exit(f"{spec!r}: {kind} takes M,U")
            consts = dict(M=nums[0], U=nums[1], PF=int(os.environ.get("HLRU_LAGS_PF") or 32), NORM=0, FAST=True)
            ints = dict(T="i32", N="i32", NC="i32")
            if kind == "lags-fwd":
                sig = dict(z_ptr=P, v_ptr=P, h0_ptr=F, y_ptr=P, final_ptr=F, **ints)
                report(hlru_lags._lags_fwd_kernel, sig, consts, 1, spec, None, {"T", "NC"})
            else:
                sig = dict(z_ptr=P, v_ptr=P, y_ptr=P, h0_ptr=F, g_ptr=P, dfinal_ptr=F, dz_ptr=P, dv_ptr=P)
                sig.update(dh0_ptr=F, **ints)
                report(hlru_lags._lags_bwd_kernel, sig, {**consts, "HAS_G": True}, 1, spec, None, {"T", "NC"})
        else:
            sys.exit(f"unknown spec {spec!r}: see the module docstring")


if __name__ == "__main__":
    main()
