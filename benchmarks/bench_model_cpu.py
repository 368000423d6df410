"""CPU throughput of the torch path: training tokens/s (forward+backward) and decode tokens/s of a small model.

Usage: PYTHONPATH=. python benchmarks/bench_model_cpu.py [--hidden_size 256 --layers 4 --block_size 4 --seq_len 256
       --batch 8]
Prints measured numbers only; nothing is assumed.
"""

import argparse
import json
import time

import torch

import hlru_lm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden_size", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--block_size", type=int, default=4)
    p.add_argument("--seq_len", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    results = []
    for mixer_type in ("bdlru", "hlru"):
        torch.manual_seed(0)
        cfg = hlru_lm.HLRUConfig(
            vocab_size=8192,
            hidden_size=args.hidden_size,
            num_hidden_layers=args.layers,
            mixer_type=mixer_type,
            block_size=args.block_size,
            eos_token_id=0,
            pad_token_id=0,
        )
        model = hlru_lm.HLRUForCausalLM(cfg)
        ids = torch.randint(1, cfg.vocab_size, (args.batch, args.seq_len))
        model.train()
        model(ids, labels=ids).loss.backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            model.zero_grad(set_to_none=True)
            model(ids, labels=ids).loss.backward()
        train_tps = args.repeats * ids.numel() / (time.perf_counter() - t0)
        model.eval()
        prompt = ids[:, :16]
        with torch.no_grad():
            model.generate(prompt, max_new_tokens=4, do_sample=False)
            t0 = time.perf_counter()
            model.generate(prompt, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
        decode_tps = args.batch * args.new_tokens / (time.perf_counter() - t0)
        row = dict(
            mixer_type=mixer_type,
            params=sum(p.numel() for p in model.parameters()),
            train_tokens_per_s=round(train_tps),
            decode_tokens_per_s=round(decode_tps),
        )
        results.append(row)
        print(json.dumps(row))
    print(json.dumps(dict(torch=torch.__version__, threads=torch.get_num_threads(), **vars(args))))


if __name__ == "__main__":
    main()
